"""The replay's Catalunya recordings: field names by the portal's list or Socrata's rule, SODA JSON values, every
row of the CSV export kept."""

from __future__ import annotations

import csv
import json

import pytest

from localrun.replay_build import SOCRATA_EXPORTS, SocrataExport, convert_socrata_csv, socrata_field_name
from localrun.template import ROOT
from tests.unit.modeler.catalunya_answers import REGISTER_CSV

REPLAY = ROOT / "data" / "replay" / "socrata"


@pytest.mark.parametrize(
    ("display", "field"),
    [
        ("Consum [kWh]", "consum_kwh"),
        ("Homes. De 65 anys i més", "homes_de_65_anys_i_m_s"),
        ("Codi comarca", "codi_comarca"),
        ("LIMADM_MUNICIPI", "limadm_municipi"),
        ("Georeferència", "georefer_ncia"),
        # the rule as the SODA exports of the SIAD and LGBTI registers show it
        ("Adreça", "adre_a"),
        ("Telèfon", "tel_fon"),
        ("Població", "poblaci"),
        ("Correu electrònic", "correu_electr_nic"),
    ],
)
def test_socratas_rule_derives_field_names_from_display_names(display, field):
    assert socrata_field_name(display) == field


def test_a_display_name_without_letters_or_digits_is_refused():
    with pytest.raises(ValueError, match="gives no field name"):
        socrata_field_name(" [ ] ")


def test_the_recordings_name_their_fields_by_the_portal_or_by_the_rule():
    for export in SOCRATA_EXPORTS:
        views = json.loads((REPLAY / f"{export.dataset}.views.json").read_text(encoding="utf-8"))
        names = [(c["name"], c["fieldName"]) for c in sorted(views["columns"], key=lambda c: c["position"])]
        if export.dataset == "ivft-vegh":
            assert [f for _, f in names] == [
                "registre", "nom", "tipologia", "inscripcio", "capacitat", "adreca", "municipi", "districte", "cp",
                "comarca", "telefon", "entitat_titular", "qualificacio", "nif",
            ]  # fmt: skip
            assert names[3] == ("Inscripció ", "inscripcio")
        elif export.display_header:
            assert all(field == socrata_field_name(display) for display, field in names), export.dataset
        else:
            assert all(field == display for display, field in names), export.dataset


def test_the_register_recording_holds_every_row_of_the_export_as_soda_serves_it():
    recording = json.loads((REPLAY / "ivft-vegh.json").read_text(encoding="utf-8"))
    with REGISTER_CSV.open(newline="", encoding="utf-8") as handle:
        raw = list(csv.reader(handle))[1:]
    assert len(recording) == len(raw) == 6300
    fields = [c["fieldName"] for c in json.loads((REPLAY / "ivft-vegh.views.json").read_text())["columns"]]
    for row, record in zip(recording, raw, strict=True):
        expected = {f: v for f, v in zip(fields, record, strict=True) if v != ""}
        expected["inscripcio"] = expected["inscripcio"] + "T00:00:00.000"  # a calendar_date, as SODA JSON has it
        assert row == expected
    assert recording[0]["municipi"] == "Fatarella, la" and recording[0]["cp"] == "43781"


def test_a_conversion_serves_dates_as_soda_does_and_refuses_what_does_not_fit(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("Registre,Inscripció \nS1,2024-01-31\nS2,\n", encoding="utf-8")
    # by the rule, "Inscripció " is "inscripci" (the portal chose "inscripcio" for the register: hence its list)
    export = SocrataExport("abcd-1234", path.name, "x", display_header=True, types={"inscripci": "calendar_date"})
    rows, columns = convert_socrata_csv(path, export)
    assert rows == [{"registre": "S1", "inscripci": "2024-01-31T00:00:00.000"}, {"registre": "S2"}]
    assert columns == [("Registre", "registre", "text"), ("Inscripció ", "inscripci", "calendar_date")]
    with pytest.raises(ValueError, match="2 columns, 3 published field names"):
        convert_socrata_csv(path, SocrataExport("abcd-1234", path.name, "x", True, ("a", "b", "c")))
    path.write_text("Registre,Inscripció \nS1,31/01/2024\n", encoding="utf-8")
    with pytest.raises(ValueError, match="is not a date"):
        convert_socrata_csv(path, export)
