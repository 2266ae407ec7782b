#!/usr/bin/env bash
# Second step of bench/ranking_study.sh: longer recipes for the sources whose selected validation
# curve was still rising in the first pass (the ranking check's curve reading, 2026-12-07: the
# random controls' scratch -- all four at 20/class; Lite0, Lite1 and LeNet-5 at 100/class --, Lite1
# finetune and the Fashion-MNIST 0-4 LeNet at 20/class, that LeNet's finetune at 100/class), with
# the LR grid moved up where the first pass selected its top LR. 2.5x the epochs (25 at 20
# labels/class, 15 at 100), 2 LRs x 2 seeds each; skip_completed=true, so a re-run finishes what
# an interrupted one left. A third step doubles the epochs of the one still rising after that; a
# fourth tries one LR beyond the grid's edge where the selected LR was at it, a fifth goes on
# where the fourth moved the edge or left a curve rising. The check then selects, per source,
# the best setting on validation over all passes.
#   bench/ranking_extend.sh [out dir]     the ranking_study.sh out dir (default outputs/ranking_study)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-outputs/ranking_study}
py=${PYTHON:-.venv/bin/python}
sources=$out/sources
fm=(data=fashion_mnist data.root=/usr/share/datasets/fashion-mnist data.image_size=48
    data.val_fraction=0.02 data.batch_size=32 'data.classes=[Sandal,Shirt,Sneaker,Bag,"Ankle boot"]')
train=(trainer.precision=32-true trainer.enable_progress_bar=false logger=none
       trainer.limit_test_batches=64 hydra.callbacks.report.enabled=false seed=0,1
       skip_completed=true)
start=$SECONDS
for budget in 20 100; do
    root=$out/target$budget
    epochs=$(( budget == 20 ? 25 : 15 ))
    ft=(--multirun "${fm[@]}" data.samples_per_class=$budget "${train[@]}" trainer.max_epochs=$epochs)
    lites=(efficientnet_lite0 efficientnet_lite1)
    [ "$budget" = 20 ] && lites+=(efficientnet_lite2)  # Lite2's scratch peaked at 100/class
    for m in "${lites[@]}"; do
        "$py" -m tlbench "${ft[@]}" model=$m strategy=scratch optimizer.lr=3e-3,1e-2 \
            hydra.sweep.dir="$root/random_$m/scratch_long"
    done
    "$py" -m tlbench "${ft[@]}" model=lenet5 strategy=scratch optimizer.lr=3e-3,1e-2 \
        hydra.sweep.dir="$root/random_lenet5_long"
done
long=(--multirun "${fm[@]}" "${train[@]}")
"$py" -m tlbench "${long[@]}" data.samples_per_class=20 trainer.max_epochs=25 \
    model=efficientnet_lite1 strategy=finetune optimizer.lr=1e-3,3e-3 \
    hydra.sweep.dir="$out/target20/efficientnet_lite1/finetune_long"
"$py" -m tlbench "${long[@]}" data.samples_per_class=20 trainer.max_epochs=25 \
    model=lenet5 model.weights="$sources/fmnist04" strategy=transfer optimizer.lr=3e-3,1e-2 \
    hydra.sweep.dir="$out/target20/lenet5_fmnist04_long"
"$py" -m tlbench "${long[@]}" data.samples_per_class=100 trainer.max_epochs=15 \
    model=lenet5 model.weights="$sources/fmnist04" strategy=finetune optimizer.lr=3e-3,1e-2 \
    hydra.sweep.dir="$out/target100/lenet5_fmnist04_long"
# Third step: the one actual still rising after the second pass (random Lite1's scratch at
# 100/class, LR 3e-3, 15 epochs) at twice the epochs.
"$py" -m tlbench "${long[@]}" data.samples_per_class=100 trainer.max_epochs=30 \
    model=efficientnet_lite1 strategy=scratch optimizer.lr=3e-3 \
    hydra.sweep.dir="$out/target100/random_efficientnet_lite1/scratch_30"
# Fourth step: one LR beyond the grid's edge for every actual whose selected LR was the largest
# (or smallest) tried, at the selected setting's epochs -- and lenet5@fmnist04's finetune at
# 20/class, whose top LR came within a point of the selected transfer.
edge() {  # budget epochs sweep-dir args...
    local budget=$1 epochs=$2 dir=$3
    shift 3
    "$py" -m tlbench "${long[@]}" data.samples_per_class="$budget" trainer.max_epochs="$epochs" \
        "$@" hydra.sweep.dir="$out/target$budget/$dir"
}
edge 20 25 random_lenet5_edge model=lenet5 strategy=scratch optimizer.lr=3e-2
edge 20 25 lenet5_fmnist04_edge model=lenet5 model.weights="$sources/fmnist04" strategy=transfer \
    optimizer.lr=3e-2
edge 20 10 lenet5_fmnist04_edge_ft model=lenet5 model.weights="$sources/fmnist04" \
    strategy=finetune optimizer.lr=1e-2
edge 20 10 lenet5_digits_edge model=lenet5 model.weights="$sources/digits" strategy=transfer \
    optimizer.lr=3e-4
edge 20 25 efficientnet_lite1/finetune_edge model=efficientnet_lite1 strategy=finetune \
    optimizer.lr=1e-2
edge 20 25 random_efficientnet_lite0/scratch_edge model=efficientnet_lite0 strategy=scratch \
    optimizer.lr=3e-2
for m in efficientnet_lite0 efficientnet_lite2; do
    edge 20 10 $m/finetune_edge model=$m strategy=finetune optimizer.lr=3e-3
done
for m in efficientnet_lite0 efficientnet_lite1 efficientnet_lite2; do
    edge 100 6 $m/finetune_edge model=$m strategy=finetune optimizer.lr=3e-3
done
edge 100 6 lenet5_digits_edge model=lenet5 model.weights="$sources/digits" strategy=finetune \
    optimizer.lr=1e-2
edge 100 15 lenet5_fmnist04_edge model=lenet5 model.weights="$sources/fmnist04" \
    strategy=finetune optimizer.lr=3e-2
edge 100 6 random_efficientnet_lite2/scratch_edge model=efficientnet_lite2 strategy=scratch \
    optimizer.lr=1e-2
edge 100 15 random_efficientnet_lite0/scratch_edge model=efficientnet_lite0 strategy=scratch \
    optimizer.lr=3e-2
# Fifth step: the fourth moved several actuals to the new edge (the Lite finetunes to 3e-3) or
# left them rising at their epochs: one LR further up, and 2.5x the epochs where still rising.
edge 20 10 lenet5_fmnist04_edge2_ft model=lenet5 model.weights="$sources/fmnist04" \
    strategy=finetune optimizer.lr=3e-2
edge 20 25 efficientnet_lite2/finetune_long model=efficientnet_lite2 strategy=finetune \
    optimizer.lr=3e-3
for m in efficientnet_lite0 efficientnet_lite2; do
    edge 20 10 $m/finetune_edge2 model=$m strategy=finetune optimizer.lr=1e-2
done
for m in efficientnet_lite0 efficientnet_lite1 efficientnet_lite2; do
    edge 100 6 $m/finetune_edge2 model=$m strategy=finetune optimizer.lr=1e-2
done
edge 100 15 efficientnet_lite2/finetune_long model=efficientnet_lite2 strategy=finetune \
    optimizer.lr=3e-3
edge 100 15 lenet5_digits_long model=lenet5 model.weights="$sources/digits" strategy=finetune \
    optimizer.lr=1e-2
edge 100 6 lenet5_digits_edge2 model=lenet5 model.weights="$sources/digits" strategy=finetune \
    optimizer.lr=3e-2
edge 100 15 lenet5_fmnist04_edge2 model=lenet5 model.weights="$sources/fmnist04" \
    strategy=finetune optimizer.lr=1e-1
edge 100 6 random_efficientnet_lite2/scratch_edge2 model=efficientnet_lite2 strategy=scratch \
    optimizer.lr=3e-2
# Sixth: the Fashion-MNIST 0-4 LeNet's finetune still chose the top LR at both budgets.
edge 20 10 lenet5_fmnist04_edge3_ft model=lenet5 model.weights="$sources/fmnist04" \
    strategy=finetune optimizer.lr=1e-1
edge 100 15 lenet5_fmnist04_edge3 model=lenet5 model.weights="$sources/fmnist04" \
    strategy=finetune optimizer.lr=3e-1
for budget in 20 100; do
    "$py" -m tlbench.report "$out/target$budget"
done
echo "longer recipes: $((SECONDS - start)) s"
