"""Hub downloads: our resumable downloader against ``hf_hub_download``, and a resume's cost.

    python bench/download.py [--size-mb 200] [--rounds 3]

Both fetch the same random file from the loopback hub (tests/hub_server.py, LFS
file redirected to its "CDN" host) into a fresh cache each round; MB/s is the
median over the rounds. Then a child process running our download is killed with
SIGKILL at 50% and the download resumed here: "re-fetched" is what the server sent
beyond the file's size (the goal is under 1% of the file), with the server throttled
(a fast network) and unthrottled (loopback speed, where socket buffers are fullest).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import table

ROOT = Path(__file__).resolve().parent.parent

REPO = "bench/big-GGUF"
NAME = "big-Q4_K_M.gguf"
CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from core.models.download import download_file
from core.models.hub import HubClient
endpoint, cache, repo, filename = sys.argv[2:6]
download_file(HubClient(endpoint=endpoint, cache_dir=Path(cache)), repo, filename)
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.utils import disable_progress_bars

    from core.models.download import download_file
    from core.models.hub import HubClient
    from tests.hub_server import HubServer, Repo

    constants.HF_HUB_OFFLINE = False  # _common switches the hub off for the other benches
    disable_progress_bars()
    size = args.size_mb * 1_000_000
    data = os.urandom(size)
    digest = hashlib.sha256(data).hexdigest()

    with HubServer([Repo.of(REPO, {NAME: data})]) as hub, tempfile.TemporaryDirectory() as tmp:
        times: dict[str, list[float]] = {"ours (download_file)": [], "hf_hub_download": []}
        for n in range(args.rounds):
            for label in times:
                cache = Path(tmp) / f"{n}-{len(times[label])}-{label[:4]}"
                start = time.perf_counter()
                if label.startswith("ours"):
                    path = download_file(HubClient(endpoint=hub.url, cache_dir=cache), REPO, NAME)
                else:
                    path = Path(
                        hf_hub_download(REPO, NAME, cache_dir=cache, endpoint=hub.url, token=False)
                    )
                times[label].append(time.perf_counter() - start)
                assert path.stat().st_size == size
        check = hashlib.sha256(path.read_bytes()).hexdigest()
        assert check == digest, "the downloaded file does not match"

        rows = [["method", "MB/s (median)", "seconds", "rounds"]]
        for label, seconds in times.items():
            median = statistics.median(seconds)
            rows.append([label, f"{size / 1e6 / median:.0f}", f"{median:.2f}", str(len(seconds))])
        print(f"file: {size / 1e6:.0f} MB random, loopback hub at {hub.url}")
        print(table(rows))
        print()

        rows = [["kill at 50%", "on disk at kill", "re-fetched", "% of file", "resume s"]]
        for label, bps in (("throttled 200 MB/s", 200_000_000), ("unthrottled", None)):
            rows.append(resume_after_kill(hub, Path(tmp) / f"kill-{bps}", size, bps, label))
        print(table(rows))


def resume_after_kill(
    hub: object, cache: Path, size: int, bps: int | None, label: str
) -> list[str]:
    """Kill a child download at 50%, resume here; what the server sent twice."""
    from core.models.download import download_file
    from core.models.hub import HubClient
    from tests.hub_server import HubServer

    assert isinstance(hub, HubServer)
    blob = hub.repos[REPO].files[NAME]
    partial = cache / ("models--" + REPO.replace("/", "--")) / "blobs" / f"{blob.sha256}.incomplete"
    served_before = hub.bytes_served(REPO, NAME)
    hub.faults.throttle_bps = bps
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(ROOT), hub.url, str(cache), REPO, NAME],
        env={**os.environ, "HF_HUB_OFFLINE": "0"},
    )
    while child.poll() is None and (not partial.exists() or partial.stat().st_size < size // 2):
        time.sleep(0.002)
    child.send_signal(signal.SIGKILL)
    child.wait()
    on_disk = partial.stat().st_size
    hub.faults.throttle_bps = None
    start = time.perf_counter()
    download_file(HubClient(endpoint=hub.url, cache_dir=cache), REPO, NAME)
    resume_s = time.perf_counter() - start
    time.sleep(0.3)  # let the killed child's connection finish counting
    refetched = hub.bytes_served(REPO, NAME) - served_before - size
    return [
        label,
        f"{on_disk / 1e6:.1f} MB",
        f"{refetched / 1e3:.0f} kB",
        f"{100 * refetched / size:.3f}%",
        f"{resume_s:.2f}",
    ]


if __name__ == "__main__":
    main()
