#!/usr/bin/env bash
# The CUDA paths, on a machine with a GPU, in one go (about 10 minutes on an H100, before tf32_run):
#   bench_amp_none, bench_amp_bf16   the benchmark, 3 repeats, no control loop (--no-control: device time)
#   tests_cnn, tests_mlp             the generated CNN and MLP projects' own tests, run on the GPU
#   fp16_compile_run                 a CNN run with fp16 + GradScaler, channels_last and torch.compile
#                                    (inductor), then resumed for one more epoch
#   tf32_run                         a wide MLP, 3 epochs with --matmul_precision highest, then high (TF32):
#                                    each one's metrics.csv (epoch_seconds, and the losses both reach)
#   oom_run                          a CNN too wide to build (one line), then batches too large for the GPU:
#                                    train.log's out-of-memory line, which names smaller batches
# Each stage writes <out>/<stage>.txt and has its own time limit, so one that hangs costs only itself.
#
#   bash benchmarks/cuda_check.sh [out_dir [stage ...]]   # default: cuda_check_out, every stage;
#                                                         # out_dir must be new or empty
#
# Needs cookiecutter, torch with CUDA, tqdm and torchinfo; Lightning for the benchmark's third loop.
# Set QUICK=1 for a smoke run of the script itself (small benchmark data; works on a CPU too).
set -u
STAGES="bench_amp_none tests_cnn bench_amp_bf16 fp16_compile_run tests_mlp tf32_run oom_run"
stages=("${@:2}")
for name in "${stages[@]}"; do
    [[ " $STAGES " == *" $name "* ]] || { echo "error: unknown stage '$name'; the stages are: $STAGES" >&2; exit 2; }
done
out_arg=${1:-cuda_check_out}
if [ -n "$(ls -A "$out_arg" 2>/dev/null)" ]; then  # its logs would be overwritten
    echo "error: '$out_arg' is not empty; pass a new or empty folder for the logs" >&2
    exit 2
fi
repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "$out_arg" && cd "$out_arg" && pwd)
python=${PYTHON:-python3}
work=$(mktemp -d)
quick=${QUICK:+--quick}
xdist=$("$python" -c 'import xdist' 2>/dev/null && echo '-n 8')  # the generated suites in 8 processes, if it can

want() {  # want <stage>: true if no stages were named, or this one was
    [ ${#stages[@]} -eq 0 ] || [[ " ${stages[*]} " == *" $1 "* ]]
}

stage() {  # stage <name> <seconds> <command...>: run it, log to <out>/<name>.txt, print its tail
    local name=$1 limit=$2
    shift 2
    want "$name" || return 0
    local start=$SECONDS
    timeout "$limit" "$@" > "$out/$name.txt" 2>&1
    local rc=$?
    echo "== $name: exit $rc in $((SECONDS - start)) s" | tee -a "$out/summary.txt"
    tail -n 12 "$out/$name.txt"
}

{ nvidia-smi -L || true
  "$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device")'
} > "$out/env.txt" 2>&1
cat "$out/env.txt"

stage bench_amp_none 240 "$python" "$repo/benchmarks/loop_overhead.py" --repeats 3 --startup_samples 1 --no-control $quick
"$python" - "$repo" "$work" <<'EOF'
import sys
from cookiecutter.main import cookiecutter

for model in ('cnn', 'mlp'):
    cookiecutter(sys.argv[1], no_input=True, output_dir=f'{sys.argv[2]}/{model}', extra_context={'model': model})
EOF
stage tests_cnn 240 bash -c "cd $work/cnn/*/ && $python -m pytest -q -rfE $xdist -p no:cacheprovider"
stage bench_amp_bf16 240 "$python" "$repo/benchmarks/loop_overhead.py" --repeats 3 --startup_samples 1 --no-control --amp bf16 $quick
fp16=(--n_samples 20000 --image_size 64 --base_channels 64 --batch_size 256 --warmup_steps 100
      --amp fp16 --channels_last true --compile true)
stage fp16_compile_run 240 bash -c "cd $work/cnn/*/ && mkdir -p run && cd run &&
    $python ../train.py --n_epoch 2 ${fp16[*]} && $python ../train.py --resume \$(ls loggers) --n_epoch 3 &&
    cat loggers/*/train.log loggers/*/val.log && grep -E 'on cuda|amp|channels_last|compile' loggers/*/note.log &&
    $python -c \"import torch, glob; c = torch.load(glob.glob('checkpoints/*/latest_checkpoint.pt')[0], weights_only=True);
print('epoch', c['epoch'], 'scaler', c['scaler'], 'keys', list(c['model'])[:2])\""
stage tests_mlp 240 bash -c "cd $work/mlp/*/ && $python -m pytest -q -rfE $xdist -p no:cacheprovider"
wide=(--n_samples 100000 --num_features 1024 --hidden_dim 4096 --n_layers 4 --batch_size 1024 --warmup_steps 100)
[ -n "$quick" ] && wide=(--n_samples 2000 --num_features 32 --hidden_dim 64 --n_layers 2 --batch_size 256 --warmup_steps 10)
stage tf32_run 240 bash -c "cd $work/mlp/*/ && for precision in highest high; do
    $python train.py --n_epoch 3 ${wide[*]} --matmul_precision \$precision --loggers_dir tf32/\$precision/logs \
        --checkpoints_dir tf32/\$precision/checkpoints > /dev/null || exit 1
    echo matmul_precision \$precision; cat tf32/\$precision/logs/metrics.csv; done"
# 2048 images of 512x512, 64 base channels: the first convolution's output alone is 137 GB, its BatchNorm's as
# much again. On a CPU (QUICK) only the first part runs
huge=(--n_samples 2600 --image_size 512 --base_channels 64 --batch_size 2048 --warmup_steps 10)
stage oom_run 240 bash -c "cd $work/cnn/*/ && mkdir -p oom && cd oom &&
    { $python ../train.py --n_epoch 1 --base_channels 1000000000000; echo exit \$?; } &&
    if [ -z '$quick' ]; then $python ../train.py --n_epoch 1 ${huge[*]} 2>&1 | tail -n 2; echo exit \${PIPESTATUS[0]};
        grep -h 'error at' loggers/*/train.log; fi"
rm -rf "$work"
