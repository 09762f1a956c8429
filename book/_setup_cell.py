# Set-up (the same cell opens every chapter): make `import dlib` load this book's package, on Colab,
# a laptop or CI alike, here and in the processes this notebook starts (`!python -m dlib`, torchrun).
# Colab ships an unrelated face-recognition library also called `dlib`: the book's folder goes first
# on sys.path and on PYTHONPATH, and any dlib already imported is dropped. Away from a copy of the
# book (Colab), the book is cloned once; a set-up that stopped half-way starts afresh on a re-run.
import os, shutil, subprocess, sys
REPO = os.environ.get("DIFFUSION_BOOK_REPO", "https://github.com/diffusion-book/diffusion-book")
def _run_or_explain(what, command):
    try:
        done = subprocess.run(command, capture_output=True, text=True)
        error = done.stderr.strip() if done.returncode else None
    except OSError as err:   # e.g. no git on this machine
        error = str(err)
    if error is not None:
        raise RuntimeError(f"{what} failed:\n{error}\nWhat to do: check that this runtime can reach the "
                           "internet (on Colab: Runtime > Disconnect and delete runtime), then run this "
                           "cell again; it starts the set-up afresh.")
def _book_root():
    for d in (os.environ.get("DIFFUSION_BOOK_ROOT", ""), os.getcwd(), os.path.dirname(os.getcwd())):
        if d and os.path.isfile(os.path.join(d, "dlib", "runtime.py")):
            return os.path.abspath(d)
    d = os.path.expanduser(os.environ.get("DIFFUSION_BOOK_HOME", "~/diffusion-book"))
    started, complete = os.path.join(d, ".setup-started"), os.path.join(d, ".setup-complete")
    if os.path.isdir(d) and (os.path.isfile(complete) or not os.path.isfile(started)):
        return d                           # set up before (or a copy of the book put there by hand)
    shutil.rmtree(d, ignore_errors=True)   # this cell's own set-up, stopped half-way: start again
    shutil.rmtree(d + ".partial", ignore_errors=True)
    _run_or_explain(f"cloning {REPO}", ["git", "clone", "--depth", "1", REPO, d + ".partial"])
    open(os.path.join(d + ".partial", ".setup-started"), "w").close()
    os.rename(d + ".partial", d)
    _run_or_explain("installing the book's requirements", [sys.executable, "-m", "pip", "install", "-q", "-e", d])
    open(complete, "w").close()
    return d
ROOT = _book_root()
sys.path.insert(0, ROOT)
_others = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != ROOT]
os.environ["PYTHONPATH"] = os.pathsep.join([ROOT] + _others)   # child processes import this dlib too
for _m in [m for m in sys.modules if m == "dlib" or m.startswith("dlib.")]:
    del sys.modules[_m]
import dlib
assert getattr(dlib, "IS_DIFFUSION_BOOK", False), f"imported the wrong dlib: {dlib.__file__} (book: {ROOT})"
print(dlib.describe())
