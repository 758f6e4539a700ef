import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)


import fnmatch  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import huggingface_hub  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def intercepted_hub(monkeypatch):
    """The Hub with the network intercepted: `create_repo` answers, `upload_folder` records the files a push would
    send (path in the repo -> local file). Returns that dict."""
    sent = {}

    def create_repo(self, repo_id, **kwargs):
        return huggingface_hub.RepoUrl(f"https://huggingface.co/user/{repo_id.split('/')[-1]}")

    def upload_folder(self, repo_id, folder_path, ignore_patterns=(), **kwargs):
        for root, _, names in os.walk(folder_path):
            for name in names:
                path = os.path.relpath(os.path.join(root, name), folder_path)
                if not any(fnmatch.fnmatch(path, pattern) for pattern in ignore_patterns):
                    sent[path] = os.path.join(root, name)

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    return sent


def lay_out_as_downloaded(sent: dict[str, str], cache: Path, repo_id: str) -> None:
    """Put the files of a push into a Hugging Face cache exactly as a download leaves them
    (`models--user--name/snapshots/<rev>/...`, `refs/main`), so `from_pretrained(repo_id, cache_dir=cache)` loads
    them with HF_HUB_OFFLINE=1."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / "0123456789abcdef"
    for path, source in sent.items():
        (snapshot / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, snapshot / path)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123456789abcdef")
