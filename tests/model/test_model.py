"""Recognizer pieces: charset, shapes, decoding, calibration, preprocessing of awkward images, TorchScript parity,
and a tiny end-to-end train -> export -> predict run on CPU (warm start with a growing charset, resume)."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from cli import app
from inkloop.card import CalibrationCurve
from inkloop.text import OutOfCharset
from model.charset import BLANK, Charset
from model.confidence import Calibration, cer_coverage_auc, expected_calibration_error, fit
from model.config import TrainConfig
from model.decode import greedy
from model.export import export, read_card
from model.lit import LitRecognizer
from model.nets.lines import LineNet
from model.preprocess import prepare_lines
from model.recognizer import ModelLoadError, Recognizer
from model.runtimes import INT8_MAX_CER, Runtime, has_int8
from model.segment import VERSION as SEGMENTER_VERSION
from model.train import TrainingError, train
from tests.support.pages import draw_page, write_folder
from tests.support.training import TINY_NET, tiny_config

# --- charset and shapes -------------------------------------------------------------------------------------------


def test_charset_round_trip_and_newline_token() -> None:
    charset = Charset.default()
    assert len(charset) == 97  # 95 printable ASCII + newline + blank
    ids = charset.encode("Hi!\nyo")
    assert BLANK not in ids and charset.decode(ids) == "Hi!\nyo"
    assert charset.decode([BLANK, *ids, BLANK]) == "Hi!\nyo"
    with pytest.raises(ValueError, match="not in the charset"):
        charset.encode("caf\u00e9")
    assert charset.clean("caf\u00e9", OutOfCharset.fold) == "cafe"
    grown, added = charset.grow(["caf\u00e9", "\u00e9t\u00e9 \u00a3"])
    assert added == ["\u00a3", "\u00e9"] and grown.characters[: len(charset.characters)] == charset.characters
    with pytest.raises(ValueError):
        Charset(["a", "a", "\n"])
    with pytest.raises(ValueError, match="newline"):
        Charset(["a", "b"])


@pytest.mark.parametrize(("height", "width"), [(40, 640), (16, 208), (24, 37), (24, 39)])
def test_output_is_one_frame_per_four_columns(height: int, width: int) -> None:
    net = LineNet(97, TINY_NET).eval()
    frames = LineNet.frames(width)
    with torch.no_grad():
        logits = net(torch.zeros(2, 1, height, width), torch.tensor([frames, max(frames // 2, 1)]))
    assert logits.shape == (2, frames, 97)
    assert frames == -(-width // 2) // 2


def test_a_line_reads_the_same_whatever_it_is_batched_with() -> None:
    torch.manual_seed(0)
    net = LineNet(97, TINY_NET).eval()
    line = torch.rand(1, 1, 16, 60)
    padded = torch.cat([torch.nn.functional.pad(line, (0, 100)), torch.rand(1, 1, 16, 160)])
    with torch.no_grad():
        alone = net(line, torch.tensor([LineNet.frames(60)]))
        batched = net(padded, torch.tensor([LineNet.frames(60), LineNet.frames(160)]))
    # The LSTM stops at the line's end; only the last convolutions' edge sees padding instead of zeros, a tiny
    # difference next to what a line's neighbours would cause without packing (checked: about 0.1).
    assert torch.allclose(alone[0], batched[0, : alone.shape[1]], atol=2e-3)


def test_default_network_size() -> None:
    parameters = sum(p.numel() for p in LineNet(97).parameters())
    assert 0.5e6 < parameters < 3e6  # a few MB as TorchScript


def test_training_config_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="extra"):
        TrainConfig.model_validate({"learning_rate": 0.1})
    with pytest.raises(ValueError):
        TrainConfig.model_validate({"net": {"widths": (8, 16, 24, 32), "depth": 3}})


# --- decoding and confidence --------------------------------------------------------------------------------------


def test_the_learning_rate_decays_by_steps_or_by_the_clock_whichever_runs_out_first() -> None:
    by_steps = LitRecognizer(
        tiny_config(max_steps=100, warmup_fraction=0.1).model_dump(mode="json"), Charset.default().characters
    )
    assert by_steps.lr_factor(0) == pytest.approx(0.1) and by_steps.lr_factor(9) == pytest.approx(1.0)
    assert by_steps.lr_factor(55) == pytest.approx(0.5) and by_steps.lr_factor(100) == pytest.approx(0.0)
    config = tiny_config(max_steps=100, warmup_fraction=0.1, max_minutes=10).model_dump(mode="json")
    clocked = LitRecognizer(config, Charset.default().characters)
    clocked.fit_seconds_before, clocked.fit_started = 0.0, time.monotonic()  # just started: steps decide
    assert clocked.lr_factor(55) == pytest.approx(0.5, abs=1e-3)
    clocked.fit_seconds_before = 300  # half the 10 minutes gone at step 20: the clock decides
    assert clocked.lr_factor(20) == pytest.approx(0.5, abs=1e-3)
    clocked.fit_seconds_before = 600  # out of time: near zero, not at its peak
    assert clocked.lr_factor(20) == pytest.approx(0.0, abs=1e-6)
    assert clocked.lr_factor(5) == pytest.approx(0.6)  # warm-up is by steps alone


def _probs(tokens: list[int], classes: int = 97, p: float = 0.9) -> np.ndarray:
    probs = np.full((len(tokens), classes), (1 - p) / (classes - 1), dtype=np.float32)
    probs[np.arange(len(tokens)), tokens] = p
    return probs


def test_greedy_collapses_repeats_and_splits_lines() -> None:
    charset = Charset.default()
    a, b, nl = charset.encode("a")[0], charset.encode("b")[0], charset.encode("\n")[0]
    decoded = greedy(_probs([nl, a, a, BLANK, a, b, BLANK, nl, b, b, nl, BLANK]), charset)
    assert decoded.text == "aab\nb"  # leading and trailing newlines are not lines
    assert len(decoded.char_probs) == len(decoded.text)
    assert len(decoded.line_raw_confidences) == 2
    assert decoded.raw_confidence == pytest.approx(0.9, abs=1e-4)
    empty = greedy(_probs([BLANK] * 5, p=0.99), charset)
    assert empty.text == "" and empty.raw_confidence == pytest.approx(0.99, abs=1e-4)


def test_calibration_fixes_an_overconfident_score_and_keeps_its_order() -> None:
    rng = np.random.default_rng(0)
    cer = rng.uniform(0, 0.6, 400)
    raw = np.clip(1 - cer / 3 + rng.normal(0, 0.02, 400), 0, 1)  # ordered right, far too confident
    calibration = fit(raw, cer)
    before = expected_calibration_error(raw, cer)
    after = expected_calibration_error(calibration(raw), cer)
    assert after < before / 3
    assert np.all(np.diff(calibration(np.linspace(0, 1, 50))) >= -1e-12)  # monotone
    assert cer_coverage_auc(-cer, cer) <= cer_coverage_auc(raw, cer) < cer.mean()  # oracle <= ours < random
    restored = Calibration.from_card(CalibrationCurve.model_validate_json(calibration.as_card().model_dump_json()))
    assert np.allclose(restored(raw), calibration(raw))


# --- preprocessing ------------------------------------------------------------------------------------------------


def _lines(image: Image.Image) -> list[np.ndarray]:
    return prepare_lines(image, 32, 512)


def _difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Mean absolute difference of two pages' line inputs (the widths may differ by a column or two)."""
    assert len(a) == len(b) and a
    assert all(abs(x.shape[1] - y.shape[1]) <= 3 for x, y in zip(a, b, strict=True))
    return float(np.mean([np.abs(x[:, : y.shape[1]] - y[:, : x.shape[1]]).mean() for x, y in zip(a, b, strict=True)]))


def _reference() -> list[np.ndarray]:
    return _lines(draw_page("hello world\nink loop", (160, 60)))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA", "P", "CMYK", "1", "I;16", "F"])
def test_any_mode_gives_the_same_input(mode: str) -> None:
    page = draw_page("hello world\nink loop", (160, 60))
    if mode in ("I;16", "F"):
        converted = page.convert("I").convert(mode)
    elif mode == "1":
        converted = page.convert("1", dither=Image.Dither.NONE)  # a thresholded bilevel scan
    else:
        converted = page.convert(mode)
    # A bilevel scan loses the anti-aliased stroke edges, so it differs a little more.
    assert _difference(_lines(converted), _reference()) < (0.06 if mode == "1" else 0.03)


def test_either_polarity_gives_the_same_input() -> None:
    dark = draw_page("hello world\nink loop", (160, 60), dark=True)
    assert _difference(_lines(dark), _reference()) < 0.03


def test_exif_orientation_is_applied() -> None:
    rotated = draw_page("hello world\nink loop", (160, 60)).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view": undoes ROTATE_90 (counter-clockwise)
    buffer = io.BytesIO()
    rotated.save(buffer, format="JPEG", exif=exif, quality=95)
    # Ignoring the tag, the text runs top to bottom and what is found are short stacks of letters, not the lines.
    assert sum(line.shape[1] for line in _lines(rotated)) < 0.7 * sum(line.shape[1] for line in _reference())
    assert _difference(_lines(Image.open(buffer)), _reference()) < 0.03


def test_input_is_one_array_per_line_with_ink_one_and_paper_zero() -> None:
    lines = _reference()
    assert len(lines) == 2
    for line in lines:
        assert line.dtype == np.float32 and line.shape[0] == 32
        assert line.max() > 0.9 and np.median(line) < 0.05
    assert lines[0].shape[1] > lines[1].shape[1]  # "hello world" is longer than "ink loop"
    assert _lines(Image.new("L", (100, 40), 230)) == []  # a blank page has no lines


# --- end to end ---------------------------------------------------------------------------------------------------


@pytest.fixture
def trained(paragraph_folder: Path, tmp_path: Path) -> Path:
    return train([paragraph_folder], [], tmp_path / "run", tiny_config(), version="tiny-test").artifact


@pytest.mark.slow
def test_train_export_predict(trained: Path, paragraph_folder: Path) -> None:
    card = read_card(trained)
    assert card.version == "tiny-test" and card.charset == Charset.default().characters
    assert card.input.model_dump() == {
        "line_height": 16, "max_line_width": 2048, "channels": 1, "ink": "1 = ink", "segmenter": SEGMENTER_VERSION
    }  # fmt: skip
    assert card.training is not None and card.training.steps == 4 and card.training.device == "cpu"
    assert card.training.planned_steps == 4 and card.training.stopped_early is None
    assert card.training.steps_text() == "4 steps"
    assert card.config is not None and card.config["net"]["widths"] == list(TINY_NET.widths)
    confidence = card.metrics["val"].confidence
    assert confidence is not None and confidence.pages == card.metrics["val"].pages
    assert {"ece", "cer_coverage_auc", "cer_coverage_auc_random"} <= confidence.model_dump(exclude_none=True).keys()
    assert (trained.parent / "checkpoints" / "last.ckpt").is_file()
    # Training quantized it to int8 and checked it on the validation pages: embedded only within the bound.
    int8 = card.metrics["int8"]
    assert int8.pages == card.metrics["val"].pages and "float" in int8.cer_by
    assert has_int8(trained) == (int8.cer - int8.cer_by["float"] <= INT8_MAX_CER)

    recognizer = Recognizer.load(trained)
    assert recognizer.runtime is (Runtime.onnx_int8 if has_int8(trained) else Runtime.onnx)
    predictions = recognizer.predict_paths(sorted(paragraph_folder.glob("*.png"))[:3])
    assert len(predictions) == 3
    for prediction in predictions:
        assert 0.0 <= prediction.confidence <= 1.0
        assert len(prediction.line_confidences) == (len(prediction.text.split("\n")) if prediction.text else 0)


@pytest.mark.slow
def test_torchscript_matches_the_eager_network(trained: Path, tmp_path: Path) -> None:
    from model.lit import LitRecognizer

    eager = LitRecognizer.load_from_checkpoint(trained.parent / "checkpoints" / "last.ckpt", map_location="cpu").net
    eager.eval()
    exported = export(eager, read_card(trained), tmp_path / "again.pt")
    scripted = torch.jit.load(str(exported))
    images = torch.rand(3, 1, 16, 208)
    frames = torch.tensor([52, 40, 9])
    with torch.no_grad():
        expected = eager(images, frames).softmax(-1)
        actual = scripted(images, frames)
    assert torch.allclose(expected, actual, atol=1e-5)
    charset = Charset.default()
    texts = [greedy(p[:n], charset).text for p, n in zip(expected.numpy(), frames.tolist(), strict=True)]
    assert texts == [greedy(p[:n], charset).text for p, n in zip(actual.numpy(), frames.tolist(), strict=True)]
    # Each runtime serving can use: frozen TorchScript (batch norm folded into the convolutions) and ONNX Runtime.
    for runtime in (Runtime.torchscript, Runtime.onnx):  # the float ones (int8: tests/model/test_runtimes.py)
        recognizer = Recognizer.load(exported, runtime=runtime)
        assert recognizer.runtime is runtime
        served = recognizer.session(images.numpy(), frames.numpy())
        assert served.shape == expected.shape
        for row, n in enumerate(frames.tolist()):  # frames past a line's end are padding, read by no one
            assert np.allclose(expected[row, :n].numpy(), served[row, :n], atol=1e-4), runtime
        assert texts == [greedy(p[:n], charset).text for p, n in zip(served, frames.tolist(), strict=True)]


@pytest.mark.slow
def test_warm_start_grows_the_charset_and_keeps_old_weights(trained: Path, tmp_path: Path) -> None:
    accented = write_folder(tmp_path / "accented", ["caf\u00e9 na\u00efve", "\u00e9t\u00e9\nhello"] * 4, (200, 64), 13)
    result = train([accented], [], tmp_path / "warm", tiny_config(max_steps=2), init=trained, grow_charset=True)
    card = result.card
    assert card.charset[: 97 - 1] == Charset.default().characters
    assert card.charset[96:] == ["\u00e9", "\u00ef"]
    assert card.parent is not None and card.parent.artifact == str(trained) and card.parent.version == "tiny-test"
    old = torch.jit.load(str(trained)).net.state_dict()
    new = torch.jit.load(str(result.artifact)).net.state_dict()
    assert new["classifier.weight"].shape[0] == 99 and old["classifier.weight"].shape[0] == 97
    # The network reads any line height, so a warm start may change it (with a warning)...
    resized = train([accented], [], tmp_path / "taller", tiny_config(max_steps=1, line_height=24), init=trained)
    assert resized.card.input.line_height == 24
    # ...but not the architecture.
    wider_net = TINY_NET.model_copy(update={"widths": (8, 16, 24, 48)})
    with pytest.raises(TrainingError, match="has network"):
        train([accented], [], tmp_path / "bad", tiny_config(net=wider_net), init=trained)


def test_pages_the_segmenter_cannot_split_give_a_clear_error(tmp_path: Path) -> None:
    blank = tmp_path / "blank"
    blank.mkdir()
    (blank / "labels.jsonl").write_text(json.dumps({"file": "a.png", "text": "hello\nworld"}) + "\n")
    Image.new("L", (200, 64), 230).save(blank / "a.png")
    result = CliRunner().invoke(app, ["train", "--data", str(blank), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert "no training lines: on no page did the segmenter find as many lines" in result.output
    assert not (tmp_path / "run" / "model.pt").exists()


@pytest.mark.slow
def test_a_run_stopped_by_its_time_cap_says_so_and_shows_progress_as_lines(
    paragraph_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tiny_config(max_steps=10_000, max_minutes=0.002, val_every_steps=10_000)
    run = train([paragraph_folder], [], tmp_path / "run", config, version="capped").card.training
    assert run is not None and 0 < run.steps < 10_000 and run.planned_steps == 10_000
    assert run.stopped_early == "the 0.002-minute time cap"
    assert run.steps_text() == f"{run.steps} of 10000 steps (stopped by the 0.002-minute time cap)"
    # Output is not a terminal here: progress comes as lines, not a bar that sits at 0/N.
    err = capsys.readouterr().err
    assert "training capped: 10000 steps from step 0" in err and "training capped: step " in err


@pytest.mark.slow
def test_resume_continues_from_the_last_checkpoint(paragraph_folder: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train([paragraph_folder], [], run, tiny_config(max_steps=2))
    before = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["inkloop_fit_seconds"]
    resumed = train([paragraph_folder], [], run, tiny_config(max_steps=4), resume=True)
    run_card = resumed.card.training
    assert run_card is not None and run_card.steps == 4
    assert run_card.fit_s is not None and run_card.fit_s > before > 0  # training time adds up across resumed parts
    with pytest.raises(TrainingError, match="nothing to resume"):
        train([paragraph_folder], [], tmp_path / "fresh", tiny_config(), resume=True)


@pytest.mark.slow
def test_cli_train_and_predict(paragraph_folder: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(tiny_config().model_dump_json())
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(paragraph_folder),
            "--out",
            str(tmp_path / "run"),
            "--config",
            str(config),
            "--max-steps",
            "3",
            "--version",
            "cli-1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "model cli-1 ->" in result.output and "3 steps" in result.output
    model = tmp_path / "run" / "model.pt"
    good = sorted(paragraph_folder.glob("*.png"))[0]
    bad = tmp_path / "broken.png"
    bad.write_bytes(good.read_bytes()[:100])
    result = runner.invoke(app, ["predict", "--json", "--model", str(model), str(good), str(bad), str(good)])
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [set(line) for line in lines] == [
        {"path", "text", "confidence", "model_version"},
        {"path", "error"},
        {"path", "text", "confidence", "model_version"},
    ]
    assert lines[0]["model_version"] == "cli-1" and "unreadable image" in lines[1]["error"]

    typo = tmp_path / "typo.json"
    typo.write_text('{"learning_rate": 0.1}')
    result = runner.invoke(app, ["train", "--data", str(paragraph_folder), "--config", str(typo)])
    assert (
        result.exit_code == 1
        and "invalid training config: learning_rate: Extra inputs are not permitted" in result.output
    )


def test_loading_something_that_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no model file"):
        Recognizer.load(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="is not an inkloop model artifact"):
        Recognizer.load(junk)


@pytest.mark.slow
def test_evaluate_reports_cer_by_polarity_and_records_it(trained: Path, tmp_path: Path) -> None:
    from synth.generate import SynthOptions, generate

    folder = generate(tmp_path / "heldout", SynthOptions(count=4, seed=0, max_lines=2, dark_share=0.5))
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--model",
            str(trained),
            "--data",
            str(folder),
            "--json",
            "--examples",
            "2",
            "--into-card",
            "heldout_fonts",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["pages"] == 4 and report["cer"] >= 0
    assert {"polarity/dark_on_light", "polarity/light_on_dark"} <= set(report["cer_by"])
    assert any(key.startswith("font/") for key in report["cer_by"]) and len(report["examples"]) == 2
    card = read_card(trained)
    assert card.metrics["heldout_fonts"].cer == report["cer"]
    assert card.metrics["heldout_fonts"].cer_by == report["cer_by"]
    assert card.metrics["val"].pages  # what training recorded is kept
    assert Recognizer.load(trained).version == "tiny-test"  # the rewritten artifact still loads
    assert has_int8(trained) == (
        "int8" in card.metrics and card.metrics["int8"].cer - card.metrics["int8"].cer_by["float"] <= INT8_MAX_CER
    )  # and keeps its int8 graph


@pytest.mark.slow
def test_int8_tries_each_variant_before_leaving_it_out_and_the_card_says_why(
    trained: Path, paragraph_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bound nothing can meet: every variant (every conv int8, the first conv float, the first and last float)
    is quantized and measured, the float graph serves, and the card holds each figure; the registry's reason for
    the runtime quotes them. With a bound anything meets, the first variant is kept at once."""
    from inkloop.labels import read_records
    from model import train as training
    from model.runtimes import runtime_reason

    pages = [(Path(r["path"]), r["text"]) for r in read_records(paragraph_folder)]
    monkeypatch.setattr(training, "INT8_MAX_CER", -1.0)
    card = training.add_int8(trained, pages)
    int8 = card.metrics["int8"]
    assert not has_int8(trained)
    assert set(int8.cer_by) == {"float", *(name for name, _ in training.INT8_VARIANTS)}
    assert int8.cer == min(v for k, v in int8.cer_by.items() if k != "float")
    assert runtime_reason(card, Runtime.onnx).startswith("int8 left out, more than 0.002 worse than float: int8 CER ")
    monkeypatch.setattr(training, "INT8_MAX_CER", 1.0)
    kept = training.add_int8(trained, pages).metrics["int8"]
    assert has_int8(trained) and set(kept.cer_by) == {"float", "every conv int8"}
    assert runtime_reason(read_card(trained), Runtime.onnx_int8).startswith("its int8 graph: int8 CER ")


@pytest.mark.slow
def test_cli_quantize_embeds_int8_and_says_what_it_measured(trained: Path, tmp_path: Path) -> None:
    from synth.generate import SynthOptions, generate

    folder = generate(tmp_path / "pages", SynthOptions(count=6, seed=1, max_lines=3))
    result = CliRunner().invoke(app, ["quantize", "--model", str(trained), "--data", str(folder), "--pages", "4"])
    assert result.exit_code == 0, result.output
    card = read_card(trained)
    int8 = card.metrics["int8"]
    assert int8.pages == 4 and int8.data == str(folder)
    assert f"on 4 pages of {folder}: int8 CER {int8.cer:.4f}, float {int8.cer_by['float']:.4f}; " in result.output
    kept = int8.cer - int8.cer_by["float"] <= INT8_MAX_CER
    assert has_int8(trained) == kept
    assert ("embedded: the onnx-int8 runtime serves it" in result.output) == kept
    if kept:
        assert Recognizer.load(trained).runtime is Runtime.onnx_int8
    missing = CliRunner().invoke(app, ["quantize", "--model", str(tmp_path / "none.pt"), "--data", str(folder)])
    assert missing.exit_code == 1 and "no model file there" in missing.output
