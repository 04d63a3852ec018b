"""Model sizes against the papers' tables: STRF's Table 2 (Aich et al., ICCV 2021; millions of
parameters with the classifier for MARS's 625 training identities), plus the sizes of the
other paper-scale models for reference.

    python benchmarks/param_counts.py
"""

from __future__ import annotations

from vidreid.models import create_model

TABLE2 = [("I3D", "resnet3d", "i3d", 28.92), ("+ STRF", "strf", "i3d", 28.97),
          ("P3D-A", "resnet3d", "p3da", 25.48), ("+ STRF", "strf", "p3da", 25.53),
          ("P3D-B", "resnet3d", "p3db", 25.48), ("+ STRF", "strf", "p3db", 25.53),
          ("P3D-C", "resnet3d", "p3dc", 25.48), ("+ STRF", "strf", "p3dc", 25.53)]


def millions(m) -> float:
    return sum(p.numel() for p in m.parameters()) / 1e6


def main() -> None:
    print("| model | ours (M) | Table 2 (M) | ours / paper |")
    print("|---|---|---|---|")
    for label, name, block, paper in TABLE2:
        n = millions(create_model(name, num_classes=625, block=block))
        print(f"| {label} ({block}) | {n:.3f} | {paper:.2f} | {n / paper:.4f} |")
    c2d = millions(create_model("resnet3d", num_classes=625, block="c2d"))
    print(f"| C2D | {c2d:.3f} | - | - |")
    print()
    print("| other paper-scale models (625 classes where they have a classifier) | M |")
    print("|---|---|")
    for label, name, kw in [("STAN, ResNet-50, K = 6", "stan", {}),
                            ("RRU + STIM, Inception-v3 + aux classifier", "rru_stim", {})]:
        print(f"| {label} | {millions(create_model(name, num_classes=625, **kw)):.3f} |")


if __name__ == "__main__":
    main()
