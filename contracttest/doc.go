// Package contracttest is the black-box acceptance suite of wecampus. It builds the real binary,
// runs `wecampus serve` as a subprocess against the WeCom and CAS simulators and an SMS webhook,
// and drives every flow only through the external contract: routes, form actions and input
// names, status codes, callback effects, CLI exit codes and JSON. Nothing here reaches into the
// service's packages except the simulators and the callback codec (which plays WeCom's side of
// the crypto).
//
// The tests are grouped by the part of the contract they check: commands_test.go (the binary
// and its commands), config_test.go (configuration errors), routes_test.go (the member routes and
// flows), callback_test.go (the callback endpoints and their side effects), hardening_test.go
// (CSRF, limits and corners); helpers_test.go and client_test.go hold the world, the CLI runner,
// the SMS gateway and the browser-like client they share.
package contracttest
