#!/bin/bash
set -eou pipefail
