# Set-up: make `import dlib` load this book's package, on Colab, a laptop or CI alike.
# (Colab ships an unrelated face-recognition library also called `dlib`; putting the book first on
# sys.path and dropping any dlib already imported guarantees we get the right one.)
import os, subprocess, sys
REPO = "https://github.com/diffusion-book/diffusion-book"
def _book_root():
    for d in (os.getcwd(), os.path.dirname(os.getcwd())):
        if os.path.isfile(os.path.join(d, "dlib", "runtime.py")):
            return os.path.abspath(d)
    d = os.path.expanduser("~/diffusion-book")
    if not os.path.isdir(d):
        subprocess.run(["git", "clone", "--depth", "1", REPO, d], check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", d], check=True)
    return d
ROOT = _book_root()
sys.path.insert(0, ROOT)
for _m in [m for m in sys.modules if m == "dlib" or m.startswith("dlib.")]:
    del sys.modules[_m]
import dlib
assert getattr(dlib, "IS_DIFFUSION_BOOK", False), f"imported the wrong dlib: {dlib.__file__}"
print(dlib.describe())
