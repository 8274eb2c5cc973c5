"""For each file named, "NAME ok" when the reference (the safetensors
package's deserialize, its format-level reader) takes it, "NAME refused"
when it raises."""
import os
import sys

from safetensors import deserialize

for path in sys.argv[1:]:
    with open(path, "rb") as f:
        b = f.read()
    try:
        deserialize(b)
        print(os.path.basename(path), "ok")
    except Exception:
        print(os.path.basename(path), "refused")
