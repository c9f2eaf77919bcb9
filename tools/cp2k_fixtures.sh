#!/usr/bin/env bash
# Makes the CP2K test fixtures in Tests/Fixtures/cp2k from scratch with Debian's cp2k (2023.1):
#   water          H2O, PBE, DZVP-MOLOPT-SR-GTH (O: s s p p d; H: s s p), non-periodic (MT Poisson)
#   water-rotated  the same molecule rotated by R = Rz(0.7) Ry(1.1) Rz(-0.4) about the origin
#   graphene       2-atom cell, PBE, SZV-MOLOPT-SR-GTH (C: s p), 6×6×1 k-mesh, band energies at Γ, Γ–K, K
# Each run writes the Kohn–Sham and overlap matrices in real space as text CSR
# (&DFT &PRINT &KS_CSR_WRITE / &S_CSR_WRITE with REAL_SPACE T, BINARY F): one file per periodic
# image, "row col value" (1-based, Hartree), the image → cell-vector table in the .out file.
# Usage: tools/cp2k_fixtures.sh [OUTDIR]   (default Tests/Fixtures/cp2k; ~1–3 min on one core)
set -euo pipefail
out="${1:-Tests/Fixtures/cp2k}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1
CP2K="$(command -v cp2k.ssmp || command -v cp2k || command -v cp2k.psmp)"

print_section() {
  cat <<'P'
    &PRINT
      &KS_CSR_WRITE
        REAL_SPACE T
        BINARY F
      &END KS_CSR_WRITE
      &S_CSR_WRITE
        REAL_SPACE T
        BINARY F
      &END S_CSR_WRITE
P
}

water() { # name, coordinates
  cat <<EOF2
&GLOBAL
  PROJECT $1
  RUN_TYPE ENERGY
  PRINT_LEVEL MEDIUM
&END GLOBAL
&FORCE_EVAL
  METHOD Quickstep
  &DFT
    BASIS_SET_FILE_NAME BASIS_MOLOPT
    POTENTIAL_FILE_NAME GTH_POTENTIALS
    &MGRID
      CUTOFF 300
      REL_CUTOFF 40
    &END MGRID
    &POISSON
      PERIODIC NONE
      PSOLVER MT
    &END POISSON
    &SCF
      EPS_SCF 1.0E-8
      MAX_SCF 60
      SCF_GUESS ATOMIC
      ADDED_MOS 6
      &DIAGONALIZATION
      &END DIAGONALIZATION
    &END SCF
    &XC
      &XC_FUNCTIONAL PBE
      &END XC_FUNCTIONAL
    &END XC
$(print_section)
      &MO
        EIGENVALUES T
        OCCUPATION_NUMBERS T
        NDIGITS 12
        &EACH
          QS_SCF 0
        &END EACH
      &END MO
    &END PRINT
  &END DFT
  &SUBSYS
    &CELL
      ABC 8.0 8.0 8.0
      PERIODIC NONE
    &END CELL
    &COORD
$2
    &END COORD
    &KIND O
      BASIS_SET DZVP-MOLOPT-SR-GTH
      POTENTIAL GTH-PBE
    &END KIND
    &KIND H
      BASIS_SET DZVP-MOLOPT-SR-GTH
      POTENTIAL GTH-PBE
    &END KIND
  &END SUBSYS
&END FORCE_EVAL
EOF2
}

coords="$(python3 - <<'PY'
import math
atoms = [("O", (0.0, 0.0, 0.117790)), ("H", (0.0, 0.755453, -0.471161)), ("H", (0.0, -0.755453, -0.471161))]
def rz(a): c, s = math.cos(a), math.sin(a); return [[c, -s, 0], [s, c, 0], [0, 0, 1]]
def ry(a): c, s = math.cos(a), math.sin(a); return [[c, 0, s], [0, 1, 0], [-s, 0, c]]
def mul(a, b): return [[sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3)] for i in range(3)]
R = mul(mul(rz(0.7), ry(1.1)), rz(-0.4))
plain = "\n".join(f"      {e} {x:.12f} {y:.12f} {z:.12f}" for e, (x, y, z) in atoms)
rot = "\n".join("      {} {:.12f} {:.12f} {:.12f}".format(e, *[sum(R[i][k] * p[k] for k in range(3)) for i in range(3)]) for e, p in atoms)
print(plain); print("=====") ; print(rot)
PY
)"
water water "${coords%%=====*}" > "$work/water.inp"
water water-rotated "${coords##*=====}" > "$work/water-rotated.inp"

cat > "$work/graphene.inp" <<'EOF2'
&GLOBAL
  PROJECT graphene
  RUN_TYPE ENERGY
  PRINT_LEVEL MEDIUM
&END GLOBAL
&FORCE_EVAL
  METHOD Quickstep
  &DFT
    BASIS_SET_FILE_NAME BASIS_MOLOPT
    POTENTIAL_FILE_NAME GTH_POTENTIALS
    &MGRID
      CUTOFF 300
      REL_CUTOFF 40
    &END MGRID
    &KPOINTS
      SCHEME MONKHORST-PACK 6 6 1
      FULL_GRID T
    &END KPOINTS
    &SCF
      EPS_SCF 1.0E-8
      MAX_SCF 80
      SCF_GUESS ATOMIC
      ADDED_MOS 4
      &SMEAR ON
        METHOD FERMI_DIRAC
        ELECTRONIC_TEMPERATURE 300
      &END SMEAR
      &MIXING
        METHOD BROYDEN_MIXING
        ALPHA 0.3
      &END MIXING
      &DIAGONALIZATION
      &END DIAGONALIZATION
    &END SCF
    &XC
      &XC_FUNCTIONAL PBE
      &END XC_FUNCTIONAL
    &END XC
    &PRINT
      &KS_CSR_WRITE
        REAL_SPACE T
        BINARY F
      &END KS_CSR_WRITE
      &S_CSR_WRITE
        REAL_SPACE T
        BINARY F
      &END S_CSR_WRITE
      &BAND_STRUCTURE
        ADDED_MOS 4
        FILE_NAME graphene.bs
        &KPOINT_SET
          UNITS B_VECTOR
          SPECIAL_POINT GAMMA 0 0 0
          SPECIAL_POINT K 1/3 1/3 0
          NPOINTS 2
        &END KPOINT_SET
      &END BAND_STRUCTURE
    &END PRINT
  &END DFT
  &SUBSYS
    &CELL
      A 2.46 0.0 0.0
      B -1.23 2.130422493309719 0.0
      C 0.0 0.0 16.0
      PERIODIC XYZ
    &END CELL
    &COORD
      SCALED
      C 0.333333333333333 0.666666666666667 0.5
      C 0.666666666666667 0.333333333333333 0.5
    &END COORD
    &KIND C
      BASIS_SET SZV-MOLOPT-SR-GTH
      POTENTIAL GTH-PBE
    &END KIND
  &END SUBSYS
&END FORCE_EVAL
EOF2

for name in water water-rotated graphene; do
  (cd "$work" && "$CP2K" -i "$name.inp" -o "$name.out")
  mkdir -p "$work/fixture/$name"
  cp "$work/$name.inp" "$work/$name.out" "$work/fixture/$name/"
  cp "$work/$name"-KS_SPIN_1*.csr "$work/$name"-S_SPIN_1*.csr "$work/fixture/$name/"
  [ -f "$work/$name.bs" ] && cp "$work/$name.bs" "$work/fixture/$name/"
done
mkdir -p "$out"
# The periodic fixture has one file per image and operator: kept as one compressed archive.
tar -C "$work/fixture" -cJf "$out/graphene.tar.xz" graphene
rm -rf "$out/water" "$out/water-rotated"
cp -r "$work/fixture/water" "$work/fixture/water-rotated" "$out/"
echo "wrote $out: $(du -sh "$out" | cut -f1)"
