"""The peers coin is measured against (the `[bench]` extra); each factory says why when its
library is missing instead of failing the whole run."""
