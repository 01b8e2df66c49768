// Package marathon holds the Marathon v2 REST API's JSON: app definitions,
// tasks, deployments and errors, with Marathon's camelCase field names, so
// that Marathon clients and tools (marathon-lb among them) work against Keel.
package marathon
