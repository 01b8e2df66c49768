// Package webui embeds Keel's web pages (plain HTML, CSS and JavaScript
// modules: no build step, no CDN) and serves them: the cluster page on the
// master, the apps page on the Marathon API, the routes page on the
// gateway's admin address. The pages use only the public APIs.
package webui
