#!/usr/bin/env bash
# Install the Debian packages the test suite needs, when they are missing:
#   gdal-bin (ogrinfo, gdaldem: to check our KML/KMZ/GPKG and terrain), PostgreSQL with PostGIS,
#   poppler-utils (pdftoppm/pdftotext: to check PDF briefs), Pango and DejaVu fonts (WeasyPrint),
#   chromium (end-to-end tests of the web app through Playwright).
# Idempotent and quiet when everything is there. Needs root (or sudo) only when installing.
set -euo pipefail

need=()
command -v ogrinfo >/dev/null 2>&1 || need+=(gdal-bin)
pgver=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1 || true)
if [[ -z "$pgver" ]] || ! command -v pg_ctlcluster >/dev/null 2>&1; then
  need+=(postgresql postgresql-contrib)
  pgver=""
fi
if [[ -z "$pgver" ]] || [[ ! -f /usr/share/postgresql/$pgver/extension/postgis.control ]]; then
  if [[ -n "$pgver" ]]; then need+=("postgresql-$pgver-postgis-3"); else need+=(postgis); fi
fi
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
for pkg in libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
for extra in ${SITEWATCH_EXTRA_DEBS:-}; do dpkg -s "$extra" >/dev/null 2>&1 || need+=("$extra"); done

if ((${#need[@]} == 0)); then exit 0; fi
echo "system-deps: installing ${need[*]}" >&2
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "system-deps: need root to install ${need[*]} (apt-get); install them and re-run" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
