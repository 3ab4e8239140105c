package filter_test

import (
	"fmt"

	"github.com/TritonDataCenter/rebalancer/moray/filter"
)

func ExampleEscape() {
	shark := "1.stor.example.com"
	fmt.Println("(manta_storage_id=" + filter.Escape(shark) + ")")
	fmt.Println("(name=" + filter.Escape("a*b(1).txt") + ")")
	// Output:
	// (manta_storage_id=1.stor.example.com)
	// (name=a\*b\(1\).txt)
}

func ExampleParse() {
	f, err := filter.Parse("&(_id>=10)(type=object)(!(name=*.tmp))")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(f)
	fmt.Println(f.Attributes())

	_, err = filter.Parse("(name=a(b)")
	fmt.Println(err)
	// Output:
	// (&(_id>=10)(type=object)(!(name=*.tmp)))
	// [_id type name]
	// filter: unescaped '(' in value at offset 7 in "(name=a(b)"
}

func ExampleFilter_Match() {
	f, _ := filter.Parse("(&(_id>=10)(type=object)(contentLength>=100))")
	record := filter.MapRecord{"_id": 42.0, "type": "object", "contentLength": 512.0}
	// _id compares as a number, as Moray converts it; the unindexed
	// contentLength keeps a string operand, which JavaScript's >= converts.
	types := func(attr string) filter.Type {
		if attr == "_id" {
			return filter.TypeNumber
		}
		return filter.TypeString
	}
	fmt.Println(f.Match(record, types))
	// Output: true
}
