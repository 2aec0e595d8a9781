// Package e2e runs the ripcord binary the way people do: a server, consoles
// on real terminals (tmux), CLI commands, curl against a production port,
// kill -9 at the worst moments, and a second OS user at the socket. Its
// tests build the binary once and drive it as separate processes only.
package e2e
