// Package browsertest holds the browser tests: a headless Chromium at a phone's viewport clicks
// through `wecampus demo` (the real binary: the service, the WeCom and CAS simulators, the
// console) and asserts what a member sees. What the member cannot see — SMS codes, messages,
// members — the tests read from the demo console, and bindings with `wecampus binding get`.
// Every screen is saved as a PNG in the screenshot folder (env WECAMPUS_SCREENSHOTS, default
// $TMPDIR/wecampus-screenshots). Without a browser the tests skip, except under CI=true, where
// they are mandatory (.ci/run installs Debian's chromium). The helpdesk console is also driven
// at a PC's viewport (1280×800), and each of its screens checked with axe-core (env WECAMPUS_AXE:
// axe.min.js, which .ci/run installs from npm).
package browsertest
