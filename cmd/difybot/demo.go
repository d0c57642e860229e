package main

import (
	"context"
	"io"
)

func demo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return serve(ctx, args, getenv, stdout, stderr)
}
