#!/usr/bin/env bash
# The realistic large example: a 52×52 graphene|hBN lateral heterostructure (5 381 atoms after
# 0.5 % vacancies, 1.5 % uniaxial strain), then examples/large/pipeline.json: S from the GPAW dzp
# basis (`overlap` stage) and the default crystal hybrid's prediction, layer by layer over chunks
# of atoms (`predict`).
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 tools/large/make_2d_supercell.py graphene-hbn --size 52 52 --vacancies 0.005 \
  --strain 0.015 0 0 --seed 7 --out outputs/large/gr-hbn
${HARMOSE:-.build/release/harmose} run --pipeline examples/large/pipeline.json
