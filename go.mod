module github.com/dcsync/dcsync

go 1.25.0

require (
	github.com/google/uuid v1.6.0 // indirect
	golang.org/x/sync v0.25.0 // indirect
)
