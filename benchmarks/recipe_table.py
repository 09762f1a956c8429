"""One table of every recipe-search cell (issue: digits in two minutes), from the results.json files.

    python benchmarks/recipe_table.py benchmarks/results/recipe_search* > benchmarks/results/recipe_search_summary.md

Each folder's cells were trained by ``benchmarks/recipe_search.py`` against that folder's base config
(its ``base_config`` in results.json, or the config file at the commit in its provenance); rows of one
folder share a machine, so compare FIDs within a folder or across folders of the same CPU only.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from recipe_search import _fmt as mean_se  # one formatter for both tables


def main(folders) -> int:
    print("# Every recipe-search cell (written by benchmarks/recipe_table.py)\n")
    print("Command: `python benchmarks/recipe_table.py " + " ".join(folders) + "`\n")
    print("Classifier-FID of DDIM-50 samples of the EMA weights after the folder's budget, mean ± standard "
          "error over training seeds; real-vs-real is each folder's baseline at the same sample count. "
          "Rows are listed per folder in the order they were run.\n")
    print("| folder | CPU | base | variant | overrides | seeds | steps | classifier-FID | real vs real |")
    print("|---|---|---|---|---|---|---|---|---|")
    for folder in folders:
        path = Path(folder) / "results.json"
        if not path.exists():
            continue
        res = json.loads(path.read_text())
        cpu = res["provenance"]["hardware"].split(",")[0]
        base = f"{res['base']} @ {res['provenance']['git']['commit'][:7]}"
        real = mean_se([r["classifier-fid"] for r in res["baseline"]["runs"]])
        for name, v in res["variants"].items():
            cells = list(v["seeds"].values())
            if cells:
                print(f"| {Path(folder).name} | {cpu} | {base} | {name} | `{json.dumps(v['overrides'])}` | {len(cells)} | "
                      f"{mean_se([c['steps'] for c in cells])} | {mean_se([c['classifier-fid'] for c in cells])} | {real} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
