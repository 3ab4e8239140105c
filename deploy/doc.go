// Package deploy holds the files that deploy the rebalancer on Triton,
// described in docs/deploying.md: the SMF manifests (smf/), the SAPI
// manifests and templates (sapi_manifests/) and the manager zone's boot
// scripts (boot/). It has no Go API: its tests render the templates as
// config-agent does and give them to the real configuration parsers, and
// check the manifests and the scripts.
package deploy
