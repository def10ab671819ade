// Package browsertest holds the browser tests: a headless Chromium at a phone's viewport clicks
// through `wecampus demo` (the real binary: the service, the WeCom and CAS simulators, the
// console) and asserts what a member sees. What the member cannot see — SMS codes, messages,
// members — the tests read from the demo console, and bindings with `wecampus binding get`.
// Every screen is saved as a PNG in the screenshot folder (env WECAMPUS_SCREENSHOTS, default
// $TMPDIR/wecampus-screenshots). Without a browser the tests skip, except under CI=true, where
// they are mandatory (.ci/run installs Debian's chromium). Every member page the tests reach is
// audited with axe-core (axe_test.go), and so is each screen of the helpdesk console, which is
// also driven at a PC's viewport (1280×800). axe-core is pinned in axe/package-lock.json and
// installed with `npm ci --prefix browsertest/axe` (.ci/run does; env WECAMPUS_AXE may name
// another axe.min.js).
package browsertest
