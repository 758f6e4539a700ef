#!/usr/bin/env bash
# The GPU check: what a GPU user needs to know works, on one GPU in a few minutes (results in bench/RESULTS.md).
#
#   1. the host-sync tests (tests/test_gpu_path.py): MentorNetTrainer's step makes no CUDA sync Trainer does not make;
#   2. the overhead MentorNetTrainer / Trainer (bench/overhead.py: timm resnet18, 32x32, batch 256, bf16, alternating
#      blocks), both trainers' images per second and peak GPU memory;
#   3. the data pipeline alone, in 0 / 4 / 8 dataloader workers, against the student step (bench/data_pipeline.py);
#   4. a 2-epoch smoke run of recipes/cifar.py on the GPU, bf16, in 8 dataloader workers, for mentornet-pd and for
#      mentormix, on a CIFAR-10-shaped synthetic dataset (bench/synthetic_cifar.py: the real one does not travel),
#      each required to learn it (test accuracy above 0.5).
#
# A bare GPU machine that reaches no registry lacks some packages: fetch their wheels here first, into the git-ignored
# .whl/ (Python 3.12, the GPU image's), and the check installs them there with the project, without dependencies:
#
#   bash bench/device_check.sh --fetch-wheels     # here, where the package registries answer
#   bash bench/device_check.sh                    # on the GPU machine, from the repository root
#   bash bench/device_check.sh --dry-run          # on a CPU, at toy sizes: every step runs (CI runs this)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=gpu
case "${1:-}" in
  --dry-run) mode=dry-run ;;
  --fetch-wheels) mode=fetch ;;
  "") ;;
  *) echo "usage: bash bench/device_check.sh [--dry-run | --fetch-wheels]" >&2; exit 2 ;;
esac

if [[ $mode == fetch ]]; then
  # What the GPU image lacks of the project's requirements (its other requirements are there).
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    "datasets==$(python3 -c 'import datasets; print(datasets.__version__)')" dill==0.4.1 multiprocess==0.70.19 \
    evaluate==0.4.6 mlxtend==0.25.0
  ls -1 .whl
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
if [[ $mode == gpu ]]; then
  if [[ -d .whl ]]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$work/site" .whl/*.whl
  fi
  python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target "$work/site" .
  export PYTHONPATH="$work/site"
  nvidia-smi -L
  device=(--device cuda --bf16)
  overhead=(--batch-size 256 --blocks 6 --steps 30)
  pipeline=(--workers 0 4 8 --images 20000)
  data=(--train_size 20000 --test_size 2000)
  smoke=(--bf16 --dataloader_num_workers 8 --per_device_eval_batch_size 1000 --logging_steps 20)
  min_accuracy=0.5
else
  export OMP_NUM_THREADS=1
  device=(--device cpu --threads 1)
  overhead=(--batch-size 8 --blocks 2 --steps 3)
  pipeline=(--workers 0 1 --images 256)
  data=(--train_size 256 --test_size 64)
  # --logging_steps 1: the toy run has a handful of steps after burn-in, and the weights are read from the logs
  smoke=(--use_cpu --dataloader_num_workers 1 --logging_steps 1 --student transformers/resnet
         --student_kwargs '{"hidden_sizes": [8, 16], "depths": [1, 1], "embedding_size": 8}')
  min_accuracy=0.0
fi
python3 -c "import torch, transformers, timm; print('torch', torch.__version__, '| transformers', transformers.__version__, \
'| timm', timm.__version__, '| cuda', torch.cuda.is_available())"

echo "== 1. host syncs in the training step"
if [[ $mode == gpu ]]; then
  python3 -m pytest tests/test_gpu_path.py -q -p no:cacheprovider
else
  echo "(the test suite runs tests/test_gpu_path.py; its CUDA tests skip without a GPU)"
fi

echo "== 2. overhead of MentorNetTrainer over Trainer"
python3 bench/overhead.py "${device[@]}" "${overhead[@]}"

echo "== 3. the data pipeline alone vs the student step"
python3 bench/synthetic_cifar.py --output_dir "$work/cifar" "${data[@]}"
python3 bench/data_pipeline.py --dataset "$work/cifar" "${device[@]}" "${pipeline[@]}"

echo "== 4. recipes/cifar.py, 2 epochs"
for method in mentornet-pd mentormix; do
  python3 recipes/cifar.py --dataset "$work/cifar" --output_dir "$work/run-$method" --method "$method" \
    --noise_rate 0.4 --num_train_epochs 2 --save_strategy no --disable_tqdm true "${smoke[@]}"
  python3 - "$work/run-$method/results.json" "$min_accuracy" <<'EOF'
import json, sys

result = json.load(open(sys.argv[1]))
print(f"{result['method']}: last accuracy {result['last_accuracy']:.4f}, {result['train_seconds']:.1f} s of training")
if result["last_accuracy"] < float(sys.argv[2]):
    sys.exit(f"{result['method']} did not learn the synthetic classes (accuracy {result['last_accuracy']:.4f})")
EOF
done
echo "device check ($mode): done"
