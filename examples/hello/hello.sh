#!/bin/sh
echo "Hello from ocibuild on $(uname -m)"
