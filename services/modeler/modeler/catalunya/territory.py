"""The territory of Catalunya: one dimension of municipalities keyed by the official 6-digit Idescat code, its
comarques, and the resolution of every source's way of naming a municipality onto it.

Codes. Idescat's 6-digit municipality code is INE's 5-digit code (2 digits of province, 3 of municipality) followed
by a check digit (``check_digit``): ``08001`` (Abrera) is ``080018``. So a 5-digit code and a 6-digit code name the
same municipality exactly when the first five digits agree and the sixth is the check digit.

Names. Sources spell municipalities their own way: ``Fatarella, la`` (the register and the municipality list, article
after a comma), ``La Fatarella``, ``FATARELLA, LA`` or ``ABRERA`` (upper case), ``L'Esquirol`` or a former name
(``Sant Carles de la Ràpita``, since renamed ``la Ràpita``). ``name_key`` reduces every spelling to one key: the
article in front, lower case, no accents or punctuation. A name resolves, in this order, by its key; by a former
official name (``FORMER_NAMES``); by its key without the leading article (``Molar`` for ``el Molar``); or, for a
locality named with its municipality (``Bítem (Tortosa)``, ``Jesús-Tortosa``), by the one part that names a
municipality. A comarca given with the name picks between namesakes and must agree with the weaker matches. A name
that stays unresolved, or matches more than one municipality, is never guessed: it is rejected with its reason.

Pure: no boto3, no environment. Tables in, tables out.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from modeler.spec import Built, NoInputRows, Rejected

SOURCE = "socrata"
MUNICIPALITIES_DATASET = "9aju-tpwc"
MUNICIPALITIES_TABLE = "socrata_9aju_tpwc"

PROVINCES = {"08": "Barcelona", "17": "Girona", "25": "Lleida", "43": "Tarragona"}
# Catalunya's extent with a margin: a coordinate outside it is a swapped or mistyped one.
LATITUDE_RANGE = (40.4, 42.95)
LONGITUDE_RANGE = (0.1, 3.4)

# Former official names still used by some sources, by name key, with the current municipality's Idescat code.
# Each was checked against the sources that use it: the comarca and postal codes they give are the municipality's.
FORMER_NAMES: dict[str, str] = {
    "bigues i riells": "080235",  # Bigues i Riells del Fai
    "cabrera d igualada": "080288",  # Cabrera d'Anoia
    "calonge": "170340",  # Calonge i Sant Antoni
    "palau de plegamans": "081568",  # Palau-solità i Plegamans
    "roda de bara": "431310",  # Roda de Berà
    "sant carles de la rapita": "431362",  # la Ràpita
    "santa maria de corco": "082541",  # l'Esquirol
    "saus": "171870",  # Saus, Camallera i Llampaies
    "vimbodi": "431763",  # Vimbodí i Poblet
    "viella": "252430",  # Vielha e Mijaran (the Spanish form of the name)
}
# Former names of comarques, by name key, with the current comarca's name key.
FORMER_COMARCA_NAMES: dict[str, str] = {"val d aran": "aran"}

_ARTICLES = ("el", "la", "els", "les", "l", "lo", "los", "las")
_TRAILING_ARTICLE = re.compile(r"^(?P<name>.+?)\s*,\s*(?P<article>el|la|els|les|l'|l’|lo|los|las)$", re.IGNORECASE)
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_ABBREVIATIONS = (
    (re.compile(r"\bSta\.\s*", re.IGNORECASE), "Santa "),
    (re.compile(r"\bSt\.\s*", re.IGNORECASE), "Sant "),
)
_PART_SEPARATORS = re.compile(r"\s*[()]\s*|\s+-\s+|-|\.\s+")
_MOJIBAKE = ("Ã", "â€")

# How a row was placed on a municipality (the territory_resolution report counts each).
BY_CODE = "code"
BY_NAME = "name"
BY_FORMER_NAME = "former_name"
BY_NAME_WITHOUT_ARTICLE = "name_without_article"
BY_LOCALITY = "locality_of_municipality"
METHODS = (BY_CODE, BY_NAME, BY_FORMER_NAME, BY_NAME_WITHOUT_ARTICLE, BY_LOCALITY)


# ----------------------------------------------------------------------------------------------------------------
# Codes
# ----------------------------------------------------------------------------------------------------------------

# INE's control-digit tables: position i of the 5-digit code is read through table _PATTERN[i].
_TABLE_A = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
_TABLE_B = (0, 3, 8, 2, 7, 4, 1, 5, 9, 6)
_TABLE_C = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)
_PATTERN = (_TABLE_C, _TABLE_B, _TABLE_A, _TABLE_C, _TABLE_B)


def check_digit(ine_code: str) -> int:
    """The check digit that turns INE's 5-digit municipality code into Idescat's 6-digit one.

    Raises
    ------
    ValueError
        When ``ine_code`` is not five digits.
    """
    if not re.fullmatch(r"[0-9]{5}", ine_code):
        raise ValueError(f"{ine_code!r} is not a 5-digit INE municipality code")
    total = sum(table[int(digit)] for table, digit in zip(_PATTERN, ine_code, strict=True))
    return (10 - total % 10) % 10


def idescat_code(ine_code: str) -> str:
    """``08001`` -> ``080018``."""
    return f"{ine_code}{check_digit(ine_code)}"


def code_text(value: Any, width: int) -> str | None:
    """A code as text of ``width`` digits, whatever the source typed it as: ``"080018"``, ``80018.0`` (a number
    column lost the leading zero) or ``" 08001 "``; None when it is not a whole number of at most ``width`` digits."""
    if value is None:
        return None
    if isinstance(value, float):
        if not value.is_integer() or value < 0:
            return None
        value = int(value)
    text = str(value).strip()
    if not text.isdigit() or len(text) > width:
        return None
    return text.zfill(width)


def code_problem(code: str | None, width: int) -> str | None:
    """Why a code cannot name a municipality (None when it can): not a code, or a wrong check digit."""
    if code is None:
        return f"not a {width}-digit municipality code"
    if width == 6 and int(code[5]) != check_digit(code[:5]):
        return f"check digit of {code} is wrong (expected {check_digit(code[:5])})"
    return None


# ----------------------------------------------------------------------------------------------------------------
# Names
# ----------------------------------------------------------------------------------------------------------------


def _repaired(text: str) -> str:
    """Undo UTF-8 read as Windows-1252 (``ESQUIROL, Lâ€™`` -> ``ESQUIROL, L’``), where that is what happened."""
    if not any(mark in text for mark in _MOJIBAKE):
        return text
    try:
        return text.encode("cp1252").decode("utf-8")
    except UnicodeError:
        return text


@lru_cache(maxsize=1 << 16)
def name_key(name: str | None) -> str | None:
    """A municipality or comarca name as a key: ``Fatarella, la``, ``La Fatarella`` and ``FATARELLA, LA`` all give
    ``la fatarella``; ``Hospitalet de Llobregat, l'`` gives ``l hospitalet de llobregat``. None for no name.

    Cached: a register names the same few hundred municipalities, types and qualifications thousands of times."""
    if name is None:
        return None
    text = " ".join(_repaired(name).split())
    inverted = _TRAILING_ARTICLE.match(text)
    if inverted:
        text = f"{inverted['article']} {inverted['name']}"
    decomposed = unicodedata.normalize("NFKD", text.replace("·", "").replace("l.l", "ll"))
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    key = " ".join(_NOT_ALNUM.sub(" ", plain).split())
    return key or None


def without_article(key: str) -> str:
    """``el molar`` -> ``molar``; a one-word name (``les``, a municipality of Aran) keeps its word."""
    first, _, rest = key.partition(" ")
    return rest if first in _ARTICLES and rest else key


def display_name(name: str) -> str:
    """``Fatarella, la`` -> ``la Fatarella``; ``Hospitalet de Llobregat, l'`` -> ``l'Hospitalet de Llobregat``."""
    text = " ".join(name.split())
    inverted = _TRAILING_ARTICLE.match(text)
    if not inverted:
        return text
    article = inverted["article"].lower()
    return f"{article}{inverted['name']}" if article.endswith(("'", "’")) else f"{article} {inverted['name']}"


def name_parts(name: str) -> list[str]:
    """The pieces of a locality's name that may name its municipality: ``Bítem (Tortosa)`` -> ``Bítem``,
    ``Tortosa``; ``Les Fonts (St. Quirze del Vallès)`` -> ``Les Fonts``, ``Sant Quirze del Vallès``."""
    text = name
    for pattern, replacement in _ABBREVIATIONS:
        text = pattern.sub(replacement, text)
    parts = [" ".join(p.split()) for p in _PART_SEPARATORS.split(text)]
    return [p for p in parts if p and p != name]


# ----------------------------------------------------------------------------------------------------------------
# The dimension
# ----------------------------------------------------------------------------------------------------------------

DIM_MUNICIPALITY_SCHEMA = pa.schema(
    [
        ("municipality_code", pa.string()),  # Idescat, 6 digits
        ("ine_code", pa.string()),  # INE, 5 digits
        ("municipality_name", pa.string()),  # as the municipality list publishes it: "Fatarella, la"
        ("display_name", pa.string()),  # "la Fatarella"
        ("comarca_code", pa.string()),
        ("comarca_name", pa.string()),
        ("province_code", pa.string()),
        ("province_name", pa.string()),
        ("latitude", pa.float64()),
        ("longitude", pa.float64()),
        ("utm_x", pa.float64()),
        ("utm_y", pa.float64()),
    ]
)

DIM_COMARCA_SCHEMA = pa.schema(
    [
        ("comarca_code", pa.string()),
        ("comarca_name", pa.string()),
        ("municipalities", pa.int64()),
        ("province_names", pa.string()),  # a comarca may straddle provinces (Cerdanya, Selva, ...)
        ("latitude", pa.float64()),  # the mean of its municipalities' coordinates: where the map labels it
        ("longitude", pa.float64()),
    ]
)


def _column(table: pa.Table, name: str) -> list[Any]:
    return table[name].to_pylist() if name in table.column_names else [None] * table.num_rows


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _first_numbers(first: list[Any], second: list[Any]) -> list[float | None]:
    return [_float(a) if _float(a) is not None else _float(b) for a, b in zip(first, second, strict=True)]


def rejected_rows(table: pa.Table, rows: list[int], reasons: list[str], examples: list[str]) -> pa.Table:
    """The rejected staging rows (every column as read, lineage included) with their reason and a short example
    (what the row named), in input order."""
    picked = table.take(pa.array(rows, pa.int64())) if rows else table.slice(0, 0)
    return picked.append_column("reason", pa.array(reasons, pa.string())).append_column(
        "example", pa.array(examples, pa.string())
    )


def dim_municipality(municipalities: pa.Table) -> Built:
    """The municipalities of Catalunya from the official list (``9aju-tpwc``), one row per Idescat code.

    A row whose code is not six digits with a valid check digit, whose comarca or coordinates are missing, or whose
    code appears more than once in the list (after keeping the newest ingestion) is rejected, never guessed.

    Raises
    ------
    NoInputRows
        When the list holds no row.
    """
    table = current_snapshot(municipalities)
    if table.num_rows == 0:
        raise NoInputRows("the municipality list (9aju-tpwc) is empty")
    raw_codes = _column(table, "codi")
    codes = [code_text(v, 6) for v in raw_codes]
    seen: dict[str, int] = {}
    for code in codes:
        if code is not None:
            seen[code] = seen.get(code, 0) + 1
    names, comarca_codes = _column(table, "nom"), _column(table, "codi_comarca")
    comarca_names = _column(table, "nom_comarca")
    # the plain latitude/longitude columns, else the georeference point's
    lat = _first_numbers(_column(table, "latitud"), _column(table, "georefer_ncia_lat"))
    lon = _first_numbers(_column(table, "longitud"), _column(table, "georefer_ncia_lon"))
    utm_x, utm_y = _column(table, "utm_x"), _column(table, "utm_y")
    out, bad, reasons, examples = [], [], [], []
    for i, code in enumerate(codes):
        name, comarca = _text(names[i]), code_text(comarca_codes[i], 2)
        problem = code_problem(code, 6)
        if problem is None and seen[code] > 1:  # type: ignore[index]
            problem = f"code {code} appears {seen[code]} times in the municipality list"  # type: ignore[index]
        elif problem is None and (name is None or comarca is None or _text(comarca_names[i]) is None):
            problem = "a name, comarca code or comarca name is missing"
        elif problem is None and (lat[i] is None or lon[i] is None):
            problem = "coordinates are missing"
        elif problem is None and code[:2] not in PROVINCES:  # type: ignore[index]
            problem = f"province {code[:2]} is not one of Catalunya's"  # type: ignore[index]
        if problem is not None:
            bad.append(i)
            reasons.append(problem)
            examples.append(f"{raw_codes[i]!r} {name}")
            continue
        out.append(
            {
                "municipality_code": code,
                "ine_code": code[:5],  # type: ignore[index]
                "municipality_name": name,
                "display_name": display_name(name),  # type: ignore[arg-type]
                "comarca_code": comarca,
                "comarca_name": _text(comarca_names[i]),
                "province_code": code[:2],  # type: ignore[index]
                "province_name": PROVINCES[code[:2]],  # type: ignore[index]
                "latitude": lat[i],
                "longitude": lon[i],
                "utm_x": _float(utm_x[i]),
                "utm_y": _float(utm_y[i]),
            }
        )
    dim = pa.Table.from_pylist(out, schema=DIM_MUNICIPALITY_SCHEMA).sort_by("municipality_code")
    rejected = Rejected(SOURCE, MUNICIPALITIES_DATASET, rejected_rows(table, bad, reasons, examples), table.num_rows)
    return Built(dim, (rejected,))


def dim_comarca(municipalities: pa.Table) -> pa.Table:
    """The comarques of the municipality dimension: code, name, how many municipalities, provinces, label point.

    Raises
    ------
    NoInputRows
        When the dimension is empty.
    """
    if municipalities.num_rows == 0:
        raise NoInputRows("dim_municipality is empty")
    groups: dict[str, dict[str, Any]] = {}
    for row in municipalities.to_pylist():
        group = groups.setdefault(
            row["comarca_code"], {"names": [], "provinces": set(), "lat": [], "lon": [], "count": 0}
        )
        group["names"].append(row["comarca_name"])
        group["provinces"].add(row["province_name"])
        group["lat"].append(row["latitude"])
        group["lon"].append(row["longitude"])
        group["count"] += 1
    rows = [
        {
            "comarca_code": code,
            # one name per code; if the list ever spelt it two ways, the most common spelling wins
            "comarca_name": min(set(g["names"]), key=lambda n: (-g["names"].count(n), n)),
            "municipalities": g["count"],
            "province_names": ", ".join(sorted(g["provinces"])),
            "latitude": sum(g["lat"]) / len(g["lat"]),
            "longitude": sum(g["lon"]) / len(g["lon"]),
        }
        for code, g in groups.items()
    ]
    return pa.Table.from_pylist(rows, schema=DIM_COMARCA_SCHEMA).sort_by("comarca_code")


# ----------------------------------------------------------------------------------------------------------------
# Resolution
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolution:
    """Where one source row lands: a municipality code and how it was found, or why it was not."""

    code: str | None
    method: str | None = None
    reason: str | None = None
    comarca_differs: bool = False  # the row's comarca is not the municipality's (the dimension's comarca wins)
    name_differs: bool = False  # resolved by code, but the row's name alone would not designate that municipality

    @property
    def resolved(self) -> bool:
        return self.code is not None


@dataclass(frozen=True)
class Territory:
    """Look-ups over ``dim_municipality``: by Idescat code, by INE code, by name key, by comarca name."""

    dimension: pa.Table

    @cached_property
    def rows(self) -> dict[str, dict[str, Any]]:
        return {r["municipality_code"]: r for r in self.dimension.to_pylist()}

    @cached_property
    def by_ine(self) -> dict[str, str]:
        return {r["ine_code"]: code for code, r in self.rows.items()}

    @cached_property
    def _by_key(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for code, row in self.rows.items():
            key = name_key(row["municipality_name"])
            if key:
                found.setdefault(key, []).append(code)
        return found

    @cached_property
    def _by_bare_key(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for key, codes in self._by_key.items():
            found.setdefault(without_article(key), []).extend(codes)
        return found

    @cached_property
    def _comarques(self) -> dict[str, str]:
        return {name_key(r["comarca_name"]) or "": r["comarca_code"] for r in self.rows.values()}

    def comarca_code_of(self, name: str | None) -> str | None:
        key = name_key(name)
        if key is None:
            return None
        return self._comarques.get(FORMER_COMARCA_NAMES.get(key, key))

    def comarca_of(self, code: str) -> str:
        return self.rows[code]["comarca_code"]

    def _matches(self, key: str) -> tuple[list[str], str | None]:
        if key in self._by_key:
            return self._by_key[key], BY_NAME
        if key in FORMER_NAMES and FORMER_NAMES[key] in self.rows:
            return [FORMER_NAMES[key]], BY_FORMER_NAME
        bare = without_article(key)
        if bare in self._by_bare_key:
            return self._by_bare_key[bare], BY_NAME_WITHOUT_ARTICLE
        return [], None

    def resolve_name(self, name: str | None, comarca: str | None = None) -> Resolution:
        """The municipality a name (and, optionally, its comarca) designates.

        Returns
        -------
        A resolved ``Resolution`` when exactly one municipality fits; otherwise one with the reason (no name, no
        municipality of that name, several).
        """
        key = name_key(name)
        if key is None:
            return Resolution(None, reason="no municipality name")
        codes, method = self._matches(key)
        if not codes:
            parts = {c for part in name_parts(name or "") for c in self._matches(name_key(part) or "")[0]}
            codes, method = sorted(parts), BY_LOCALITY
        if not codes:
            return Resolution(None, reason="no municipality of Catalunya has this name")
        return self._decide(name or "", comarca, codes, method)

    def _decide(self, name: str, comarca: str | None, codes: list[str], method: str | None) -> Resolution:
        """One municipality out of the candidates a name matched, the comarca deciding between namesakes."""
        comarca_code = self.comarca_code_of(comarca) if comarca else None
        in_comarca = [c for c in codes if comarca_code is not None and self.comarca_of(c) == comarca_code]
        if len(in_comarca) == 1:
            return Resolution(in_comarca[0], method)
        if len(codes) == 1 and (comarca is None or method in (BY_NAME, BY_FORMER_NAME)):
            # The name is unique: the municipality is certain; a comarca the row gives otherwise is outdated or
            # wrong (the dimension's comarca wins). A looser match must agree with the row's comarca instead.
            return Resolution(codes[0], method, comarca_differs=comarca is not None)
        if len(codes) == 1:
            found = self.rows[codes[0]]
            reason = f"matches {found['municipality_name']} only loosely, and that is not in the comarca given"
        else:
            listed = ", ".join(f"{self.rows[c]['municipality_name']} ({self.rows[c]['comarca_name']})" for c in codes)
            reason = f"matches {len(codes)} municipalities and the comarca does not decide: {listed}"
        return Resolution(None, reason=reason)

    def resolve_code(self, value: Any, width: int, name: str | None = None) -> Resolution:
        """The municipality of a 6-digit Idescat or 5-digit INE code; the row's name, if any, is compared."""
        code = code_text(value, width)
        problem = code_problem(code, width)
        if problem is not None:
            return Resolution(None, reason=problem)
        found = code if width == 6 else self.by_ine.get(code)  # type: ignore[arg-type]
        if found is None or found not in self.rows:
            return Resolution(None, reason="the code is not in the municipality list")
        # The code decides; the name is only compared: does it, on its own, designate the same municipality?
        differs = name is not None and self.resolve_name(name).code != found
        return Resolution(found, BY_CODE, name_differs=differs)


def resolve_names(territory: Territory, names: Iterable[str | None], comarques: Iterable[str | None] | None):
    """One ``Resolution`` per row, each distinct (name, comarca) pair resolved once."""
    names = list(names)
    pairs = list(zip(names, comarques, strict=True)) if comarques is not None else [(n, None) for n in names]
    cache: dict[tuple[str | None, str | None], Resolution] = {}
    for pair in pairs:
        if pair not in cache:
            cache[pair] = territory.resolve_name(*pair)
    return [cache[p] for p in pairs]


def resolve_codes(territory: Territory, codes: Iterable[Any], width: int, names: Iterable[str | None] | None = None):
    """One ``Resolution`` per row, each distinct (code, name) pair resolved once."""
    codes = list(codes)
    pairs = list(zip(codes, names, strict=True)) if names is not None else [(c, None) for c in codes]
    cache: dict[tuple[Any, str | None], Resolution] = {}
    for pair in pairs:
        if pair not in cache:
            cache[pair] = territory.resolve_code(pair[0], width, pair[1])
    return [cache[p] for p in pairs]


def current_snapshot(table: pa.Table) -> pa.Table:
    """The rows of the newest landing of a snapshot table (a Socrata dataset is replaced whole, so staging holds one;
    should two ever be visible at once, mixing them would count every row twice)."""
    if "_ingested_at" not in table.column_names or table.num_rows == 0:
        return table
    newest = pc.max(table["_ingested_at"])
    return table.filter(pc.fill_null(pc.equal(table["_ingested_at"], newest), False))


def newest_ingestion(table: pa.Table):
    """The newest ``_ingested_at`` of a staging table (when the snapshot was read).

    Raises
    ------
    NoInputRows
        When the table has no ``_ingested_at``.
    """
    if "_ingested_at" not in table.column_names or table.num_rows == 0:
        raise NoInputRows("the staging table has no _ingested_at: its snapshot date is unknown")
    newest = pc.max(table["_ingested_at"]).as_py()
    if newest is None:
        raise NoInputRows("the staging table has no _ingested_at: its snapshot date is unknown")
    return newest


def rejected_of(
    dataset: str,
    table: pa.Table,
    resolutions: list[Resolution],
    examples: list[str],
    extra: Mapping[int, str] | None = None,
) -> tuple[list[int], Rejected]:
    """The indexes of the rows to keep and the ``Rejected`` of the others (unresolved, or in ``extra`` with their
    own reason)."""
    keep, bad, reasons, shown = [], [], [], []
    for i, resolution in enumerate(resolutions):
        reason = (extra or {}).get(i) or (None if resolution.resolved else resolution.reason)
        if reason is None:
            keep.append(i)
        else:
            bad.append(i)
            reasons.append(reason)
            shown.append(examples[i])
    return keep, Rejected(SOURCE, dataset, rejected_rows(table, bad, reasons, shown), table.num_rows)
