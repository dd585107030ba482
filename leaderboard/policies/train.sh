#!/usr/bin/env bash
# Trains the generation-parameter policies behind the trained leaderboard rows (see README.md
# beside this file). Run from the repository root:
#
#   bash leaderboard/policies/train.sh                 # all nine, one after the other
#   bash leaderboard/policies/train.sh mmlu spgg-po    # one
#
# Settings: spgg-po = 3 agents, partial observation; spgg-fo = 3 agents, full observation;
# econ = 2 agents, observation none (ECON's two independent executors). Training problems:
# MMLU and HumanEval test minus the pinned benchmark problems (tiny-v1, small-v1: the CLI's
# --holdout default); GSM8K its train split (needs SPGG_GSM8K_PATH). Each run writes
# leaderboard/policies/<task>/<setting>/{policy.pt,run_meta.json,history.json} (and the
# resumable checkpoint.pt and TensorBoard logs, which are not committed).
set -euo pipefail
UPDATES=${UPDATES:-20}
EPISODES=${EPISODES:-16}

train() {
    local task=$1 setting=$2 split=() max_tokens=128
    case $setting in
        spgg-po) set -- --n-agents 3 --observation partial ;;
        spgg-fo) set -- --n-agents 3 --observation full ;;
        econ) set -- --n-agents 2 --observation none ;;
        *) echo "unknown setting $setting (spgg-po, spgg-fo, econ)" >&2; return 2 ;;
    esac
    [ "$task" = gsm8k ] && split=(--split train)
    [ "$task" = humaneval ] && max_tokens=192
    python -m spgg_env.agents.train_cli genparam --task "$task" "$@" "${split[@]}" \
        --updates "$UPDATES" --episodes "$EPISODES" --max-tokens "$max_tokens" --seed 0 \
        --no-progress --resume --out "leaderboard/policies/$task/$setting"
}

if [ $# -eq 2 ]; then
    train "$1" "$2"
else
    for task in mmlu gsm8k humaneval; do
        for setting in spgg-po spgg-fo econ; do train "$task" "$setting"; done
    done
fi
