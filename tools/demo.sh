#!/usr/bin/env bash
# make demo: not wired yet (issue 6 adds the sample bag, the node run and the report).
echo "make demo: not yet — the demo lands with the bench issue. Run 'make test' meanwhile."
