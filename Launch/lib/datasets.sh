# Sourced by Launch/accuracy-study and Launch/k-study: the data sets of the studies by name. dataset NAME DIR sets
# args (the --data flags of deepcluster), seeds (the study's default seeds, SEEDS_<name> overrides) and classes (the
# true class count); CSV copies of the R sets go into DIR. Installs dataset-fashion-mnist and r-cran-mlbench when
# missing (root).
need_apt() {  # PACKAGE: install it when missing (the tests' packages come from Launch/setup)
  dpkg -s "$1" > /dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$1" > /dev/null; }
}
dataset() {  # NAME DIR
  local set="$1" dir="$2" r_name
  case "$set" in
    mnist10k) args=(); seeds="${SEEDS_mnist10k:-0 1 2 3 4}"; classes=10 ;;
    fashion) need_apt dataset-fashion-mnist; args=(--data /usr/share/datasets/fashion-mnist --split test); seeds="${SEEDS_fashion:-0 1 2}"; classes=10 ;;
    satellite|vehicle|letter)
      need_apt r-cran-mlbench
      case "$set" in satellite) r_name=Satellite; classes=6 ;; vehicle) r_name=Vehicle; classes=4 ;; letter) r_name=LetterRecognition; classes=26 ;; esac
      [ -f "$dir/$set.csv" ] || Rscript -e "library(mlbench); data($r_name); write.csv($r_name, commandArgs(TRUE)[1], row.names = FALSE)" \
          "$dir/$set.csv" > /dev/null
      args=(--data "$dir/$set.csv")
      if [ "$set" = satellite ]; then seeds="${SEEDS_satellite:-0 1 2}"; else seeds="${SEEDS_other:-0 1 2}"; fi ;;
    mnist70k)
      [ -f runs/mnist-full/train-images-idx3-ubyte.gz ] || Launch/fetch-mnist runs/mnist-full --from ../shared/data/mnist
      args=(--data runs/mnist-full --split all); seeds="${SEEDS_mnist70k:-0 1 2}"; classes=10 ;;
    *) echo "error: unknown data set '$set' (mnist10k, fashion, satellite, vehicle, letter, mnist70k)" >&2; exit 2 ;;
  esac
}
