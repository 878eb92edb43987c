#!/bin/sh
# Text-dense papers for `bench/ingest.py`: the PDF vignettes that Debian's R packages ship
# (Journal of Statistical Software-style articles: two to three thousand characters a page,
# formulas, tables, references). 21 PDFs, 387 pages, 3.3 MB.
#
#     sh bench/papers.sh DIR            # downloads the .deb files, no install, no root needed
#     .venv/bin/python bench/ingest.py DIR --max-pages 0
#
# The PDFs keep their packages' licences (GPL); they are read in place, never copied into
# the repository.
set -eu
out=${1:?usage: sh bench/papers.sh DIR}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
for pkg in r-cran-aer r-cran-coda r-cran-lme4 r-cran-mcmcpack r-cran-mgcv r-cran-multcomp \
    r-cran-party r-cran-plm r-cran-sandwich r-cran-strucchange r-cran-vcd r-cran-zoo; do
    apt-get download "$pkg" >/dev/null
done
for deb in ./*.deb; do
    dpkg -x "$deb" x
done
find x -name '*.pdf' -exec cp {} "$out"/ \;
echo "$(ls "$out"/*.pdf | wc -l) PDFs in $out"
