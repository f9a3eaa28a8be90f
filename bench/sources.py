"""Where the paper's data and weights come from: what to download and where to put it.

bench never downloads anything; ``bench plan`` and ``bench data check`` print these hints when a
dataset or weight file of a suite is missing.
"""

from __future__ import annotations

DATASET_SOURCES: dict[str, str] = {
    "isic2019": "ISIC 2019 training data — https://challenge.isic-archive.com/data/#2019 : "
                "ISIC_2019_Training_Input.zip (the JPEGs; unzip into `root`), "
                "ISIC_2019_Training_GroundTruth.csv (`labels`), "
                "ISIC_2019_Training_Metadata.csv (`metadata`). Licence CC BY-NC.",
    "ham10000": "HAM10000 — https://doi.org/10.7910/DVN/DBW86T : the two image zips (into "
                "`root`) and HAM10000_metadata.csv (`labels`). Licence CC BY-NC 4.0.",
    "pad_ufes20": "PAD-UFES-20 — https://data.mendeley.com/datasets/zr7vgbcyr2/1 : the images "
                  "(imgs_part_*, all into `root`) and metadata.csv (`labels`). Licence CC BY.",
    "image_folder": "an image folder (class sub-folders). DermNet for the paper: "
                    "https://www.kaggle.com/datasets/shubhamgoel27/dermnet (train/ and test/, "
                    "23 class folders each) into `root`.",
    "oral_histopathology": "Histopathologic oral cancer detection — "
                           "https://www.kaggle.com/datasets/ashenafifasilkebede/dataset "
                           "({train,val,test}/{Normal,OSCC}) into `root`.",
    "csv": "a manifest CSV (path,label[,group][,split]) and its images.",
}

WEIGHT_SOURCES: dict[str, str] = {
    "barlowtwins": "Barlow Twins ImageNet ResNet-50 (facebookresearch/barlowtwins, torch.hub "
                   "'resnet50'): https://dl.fbaipublicfiles.com/barlowtwins/ep1000_bs2048_lrw0.2"
                   "_lrb0.0048_lambd0.0051/resnet50.pth",
    "vicreg200": "VICReg ImageNet ResNet-200 ×2 (facebookresearch/vicreg, arch resnet200_2x): "
                 "https://dl.fbaipublicfiles.com/vicreg/resnet200x2.pth",
    "vicreg": "VICReg ImageNet ResNet-50 (facebookresearch/vicreg): "
              "https://dl.fbaipublicfiles.com/vicreg/resnet50.pth",
}


def weights_hint(path: str) -> str:
    """A download hint for a missing ``file:`` weights path, by its name."""
    low = path.lower()
    for key, text in WEIGHT_SOURCES.items():
        if key in low:
            return f"{text} — save it as {path}. Its sha256 is not published; bench records " \
                   "the file's sha256 as the init's fingerprint."
    return f"place the weights file at {path}"
