"""Audio end to end through the CLI: watermark, stamp (mixed folders), strip + re-encode, recover,
copied identifiers refused by likeness, and bad audio inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import watermark.audio
from cli.main import cli
from manifests import GenerationInfo
from provenance._internal import audio_likeness
from provenance._internal.audio import decode_audio, encode_audio
from provenance.errors import CorruptInputError, UnsupportedFormatError
from provenance.keys import Identity
from provenance.stamp import stamp
from provenance.store import open_store
from provenance.verify import State, verify_bytes

from .conftest import PUBLIC_JPEGS

AUDIO = Path(__file__).resolve().parent / "fixtures" / "audio"
RATE = 16000


def _speech(seconds: float = 5.0, name: str = "speech_cmu-arctic_aew_a0001-3.ogg") -> np.ndarray:
    clip = decode_audio((AUDIO / name).read_bytes(), name)
    assert clip.sample_rate == RATE
    return clip.samples[: int(seconds * RATE)]


@pytest.fixture(scope="module")
def voice() -> np.ndarray:
    """6 s of a CMU ARCTIC speaker (mono, 16 kHz): a short voice clip."""
    return _speech(6.0)


def _stamp_args(identity_dir: Path, db: Path) -> list[str]:
    return ["--identity", str(identity_dir), "--store", str(db), "--model", "voice-clone-1", "--jobs", "1"]


def test_watermark_embed_and_detect_audio_files(tmp_path: Path, voice: np.ndarray) -> None:
    runner = CliRunner()
    # OGG Opus is how voice messages travel; 64 kbit/s keeps the current mark.
    (tmp_path / "in.ogg").write_bytes(encode_audio(voice, RATE, "ogg", bit_rate=64000))
    (tmp_path / "in.flac").write_bytes(encode_audio(voice, RATE, "flac"))
    for name in ("in.ogg", "in.flac"):
        out = tmp_path / f"marked-{name}"
        made = runner.invoke(
            cli, ["watermark", "embed", str(tmp_path / name), "-o", str(out), "--payload", "00112233445566ff"]
        )
        assert made.exit_code == 0, made.stderr
        assert made.stdout == "" and "watermarked" in made.stderr
        assert out.read_bytes()[:4] == (tmp_path / name).read_bytes()[:4]  # same container
        found = runner.invoke(cli, ["watermark", "detect", str(out), "--json"])
        assert found.exit_code == 0, found.stderr
        doc = json.loads(found.stdout)
        assert doc["detected"] is True and doc["payload"] == "00112233445566ff"
        assert doc["algorithm"] == watermark.audio.ALGORITHM and doc["p_value"] < 1e-9
    unmarked = runner.invoke(cli, ["watermark", "detect", str(tmp_path / "in.flac")])
    assert unmarked.exit_code == 3
    assert unmarked.stdout.strip().endswith("no watermark found") and unmarked.stderr == ""


def test_stamp_mixed_folder_strip_reencode_excerpt_and_recover(
    identity_dir: Path, tmp_path: Path, voice: np.ndarray
) -> None:
    runner = CliRunner()
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes((PUBLIC_JPEGS / "adobe-20220124-A.jpg").read_bytes())
    (folder / "voice.wav").write_bytes(encode_audio(voice, RATE, "wav"))
    (folder / "voice.mp3").write_bytes(encode_audio(voice, RATE, "mp3", bit_rate=128000))
    (folder / "message.ogg").write_bytes(encode_audio(voice, RATE, "ogg", bit_rate=64000))
    (folder / "notes.txt").write_text("not media")
    db = tmp_path / "m.db"
    stamped = runner.invoke(
        cli, ["stamp", str(folder), "-o", str(tmp_path / "out"), *_stamp_args(identity_dir, db), "--json"]
    )
    assert stamped.exit_code == 0, stamped.stderr
    report = json.loads(stamped.stdout)
    assert report["counts"] == {"stamped": 4, "skipped": 0, "ignored": 1, "failed": 0}
    assert "4 stamped" in stamped.stderr
    out = tmp_path / "out"
    assert decode_audio((out / "voice.mp3").read_bytes(), "voice.mp3").codec.startswith("mp3")
    # OGG cannot embed a manifest: it is signed beside it, bound to the file's hash.
    assert (out / "message.c2pa").read_bytes()[4:8] == b"jumb"
    assert decode_audio((out / "message.ogg").read_bytes(), "message.ogg").codec == "opus"

    checked = runner.invoke(cli, ["verify", str(out), "--store", str(db), "--json"])
    assert checked.exit_code == 0, checked.stderr
    docs = {Path(d["file"]).name: d for d in map(json.loads, checked.stdout.splitlines())}
    assert set(docs) == {"photo.jpg", "voice.wav", "voice.mp3", "message.ogg"}
    assert docs["message.ogg"]["embedded"] is False  # checked against message.c2pa
    # ... and message.c2pa is part of message.ogg, not a file of its own (nor a skipped one)
    assert "skipped" not in checked.stderr and "message.c2pa" not in checked.stderr
    for name in ("voice.wav", "voice.mp3", "message.ogg"):
        doc = docs[name]
        assert doc["state"] == "valid" and not doc["recovered"] and doc["format"].startswith("audio/")
        assert doc["watermark"]["algorithm"] == watermark.audio.ALGORITHM
        assert doc["watermark"]["matches_manifest"] is True
        assert doc["declared_watermarks"][0]["algorithm"] == watermark.audio.ALGORITHM
        actions = [a["action"] for a in doc["active_manifest"]["actions"]]
        assert actions == ["c2pa.created", "c2pa.watermarked.bound"]
    with open_store(db) as store:
        entries = store.list()
        assert sorted(e.mime for e in entries) == ["audio/mpeg", "audio/ogg", "audio/wav", "image/jpeg"]
        assert all(e.fingerprint_audio for e in entries if e.mime.startswith("audio/"))

    # What a messenger does: a 5 s excerpt, no metadata, MP3 at 128 kbit/s.
    published = decode_audio((out / "voice.wav").read_bytes(), "voice.wav")
    excerpt = published.samples[int(0.6 * RATE) : int(5.6 * RATE)]
    (tmp_path / "shared.mp3").write_bytes(encode_audio(excerpt, RATE, "mp3", bit_rate=128000))
    text = runner.invoke(cli, ["verify", str(tmp_path / "shared.mp3"), "--store", str(db)])
    assert text.exit_code == 0, text.stderr
    assert "VALID - RECOVERED FROM WATERMARK" in text.stdout
    assert "The audio matches the clip its credentials were issued for" in text.stdout
    assert "Likeness to the audio clip they were issued for" in text.stdout
    as_json = runner.invoke(
        cli,
        [
            "verify",
            str(tmp_path / "shared.mp3"),
            "--store",
            str(db),
            "--json",
            "--html",
            str(tmp_path / "report.html"),
        ],
    )
    assert as_json.exit_code == 0 and as_json.stderr.startswith("wrote the report to")
    doc = json.loads(as_json.stdout)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Content Credentials recovered from the invisible watermark" in page
    assert "an invisible watermark in the sound leads to its original credentials" in page
    assert "the audio still sounds like the clip they were issued for" in page
    assert doc["recovered"] is True and doc["state"] == "valid"
    assert doc["watermark"]["payload"] == docs["voice.wav"]["watermark"]["payload"]
    assert doc["fingerprint_similarity"] >= audio_likeness.SAME_AUDIO
    assert doc["generator"] is not None and doc["model"] == "voice-clone-1"


def test_identifier_copied_onto_other_audio_is_refused(
    identity: Identity, tmp_path: Path, voice: np.ndarray
) -> None:
    with open_store(tmp_path / "m.db") as store:
        stamped = stamp(
            encode_audio(voice, RATE, "wav"),
            identity,
            GenerationInfo(generator="tts", model="voice-clone-1"),
            store=store,
        )
        # Anyone can read the public mark and put the identifier on another recording.
        other = _speech(5.0, "speech_librispeech_198-209-0000.ogg")
        forged = watermark.audio.embed(other, RATE, stamped.payload)
        data = encode_audio(forged, RATE, "mp3", bit_rate=128000)
        result = verify_bytes(data, store=store)
    assert result.watermark is not None and result.watermark.payload == stamped.identifier
    assert result.state is State.INVALID
    assert "provenance.content.mismatch" in [f.code for f in result.failures]
    assert result.fingerprint_similarity is not None
    assert result.fingerprint_similarity < audio_likeness.SAME_AUDIO
    assert "does not sound like the clip" in result.summary
    (tmp_path / "forged.mp3").write_bytes(data)
    shown = CliRunner().invoke(
        cli, ["verify", str(tmp_path / "forged.mp3"), "--store", str(tmp_path / "m.db")]
    )
    assert shown.exit_code == 1
    assert "issued for different-sounding audio" in shown.stdout and shown.stderr == ""


def test_audio_stamp_records_in_both_store_backends(
    identity: Identity, store_location: str, voice: np.ndarray
) -> None:
    with open_store(store_location) as store:
        stamped = stamp(
            encode_audio(voice, RATE, "m4a", bit_rate=128000),
            identity,
            GenerationInfo(generator="tts"),
            store=store,
            source_name="voice.m4a",
        )
        entry = store.get_by_payload(stamped.payload)
        assert entry is not None and entry.mime == "audio/mp4"
        assert entry.soft_binding_alg == watermark.audio.ALGORITHM
        assert audio_likeness.is_reference(entry.fingerprint_audio)
        clip = decode_audio(stamped.data, "voice.m4a")
        shared = encode_audio(clip.samples[RATE:], RATE, "wav")  # cut the first second, strip
        result = verify_bytes(shared, store=store)
    assert result.recovered and result.state is State.VALID
    assert result.active_manifest is not None and result.active_manifest.label == stamped.manifest_label


def _wav(samples: np.ndarray, subtype: str = "PCM_16", rate: int = RATE) -> bytes:
    return encode_audio(samples.astype(np.float32), rate, "wav", subtype=subtype)


def test_audio_formats_and_layouts_round_trip(voice: np.ndarray) -> None:
    loud = np.clip(voice * 8, -1, 1)  # clipped: full-scale samples
    for samples, subtype in ((voice, "FLOAT"), (voice, "PCM_24"), (loud, "PCM_16")):
        back = decode_audio(_wav(samples, subtype), "a.wav")
        assert back.subtype == subtype and back.samples.shape == samples.shape
        assert np.abs(back.samples - samples).max() < 1e-3
    # Detection and verification decode only the start of long files.
    assert decode_audio(_wav(voice), "a.wav", seconds=1.5).samples.shape == (int(1.5 * RATE), 1)
    mp3 = encode_audio(voice, RATE, "mp3", bit_rate=128000)
    assert len(decode_audio(mp3, "a.mp3", seconds=2.0).samples) == 2 * RATE
    surround = np.repeat(voice, 6, axis=1) * np.linspace(1.0, 0.3, 6, dtype=np.float32)
    assert decode_audio(_wav(surround), "5.1.wav").channels == 6
    stereo = np.repeat(voice, 2, axis=1)
    for container in ("mp3", "m4a", "ogg"):
        back = decode_audio(encode_audio(stereo, RATE, container, bit_rate=96000), f"a.{container}")
        assert back.channels == 2 and back.container == container and back.seconds > 4.9


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("silence", "silent"),
        ("zero", "no audio samples"),
        ("one", "needs at least"),
        ("short", "needs at least"),
        ("8-bit", "8-bit samples"),
        ("hot-float", "above full scale"),
        ("truncated-mp3", "truncated or corrupt"),
        ("corrupt-mp3", "truncated or corrupt"),
    ],
)
def test_bad_audio_is_one_clear_error_and_nothing_is_written(
    identity_dir: Path, tmp_path: Path, voice: np.ndarray, case: str, message: str
) -> None:
    mp3 = encode_audio(voice, RATE, "mp3", bit_rate=128000)
    data = {
        "silence": _wav(np.zeros((6 * RATE, 1))),
        "zero": _wav(np.zeros((0, 1))),
        "one": _wav(voice[:1]),
        "short": _wav(voice[: 2 * RATE]),
        "8-bit": _wav(voice, "PCM_U8"),
        "hot-float": _wav(voice * 8, "FLOAT"),
        "truncated-mp3": mp3[: len(mp3) // 2 + 7],
        "corrupt-mp3": mp3[:400] + bytes(range(256)) * 40,
    }[case]
    name = "in.mp3" if "mp3" in case else "in.wav"
    (tmp_path / name).write_bytes(data)
    runner = CliRunner()
    db = tmp_path / "m.db"
    result = runner.invoke(
        cli, ["stamp", str(tmp_path / name), "-o", str(tmp_path / "out"), *_stamp_args(identity_dir, db)]
    )
    assert result.exit_code == 6, result.stderr
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and message in failed[0] and "Traceback" not in result.stderr
    assert result.stdout == ""
    assert [p.name for p in (tmp_path / "out").iterdir()] == [".provenance-stamp.lock"]
    with open_store(db) as store:
        assert store.count() == 0
    if case in ("8-bit", "corrupt-mp3"):
        return  # a watermark alone can be embedded in 8-bit audio; the corrupt MP3 is covered above
    embedded = runner.invoke(
        cli,
        [
            "watermark",
            "embed",
            str(tmp_path / name),
            "-o",
            str(tmp_path / "w.wav"),
            "--payload",
            "00112233445566ff",
        ],
    )
    assert embedded.exit_code == 4 and embedded.stdout == ""
    assert embedded.stderr.startswith("error: ") and message in embedded.stderr
    assert len(embedded.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "w.wav").exists()


def test_too_short_clip_is_not_detected_and_corrupt_audio_is_a_file_error(
    tmp_path: Path, voice: np.ndarray
) -> None:
    (tmp_path / "short.wav").write_bytes(_wav(voice[: RATE // 2]))
    found = CliRunner().invoke(cli, ["watermark", "detect", str(tmp_path / "short.wav")])
    assert found.exit_code == 3 and "no watermark found" in found.stdout
    with pytest.raises(CorruptInputError, match="truncated"):
        decode_audio(_wav(voice)[:-1000], "cut.wav")
    with pytest.raises(UnsupportedFormatError, match="not an audio file"):
        decode_audio(b"hello world, not audio at all", "x.wav")
    mp3 = encode_audio(voice, RATE, "mp3", bit_rate=128000)
    (tmp_path / "cut.mp3").write_bytes(mp3[: len(mp3) // 2 + 7])
    cut = CliRunner().invoke(cli, ["verify", str(tmp_path / "cut.mp3")])
    assert cut.exit_code == 4 and cut.stderr.startswith("error: ") and "truncated" in cut.stderr


def test_ogg_sidecar_is_bound_to_the_file(
    identity: Identity, identity_dir: Path, tmp_path: Path, voice: np.ndarray
) -> None:
    from provenance.sign import sign_sidecar
    from provenance.verify import verify_file

    ogg = encode_audio(voice, RATE, "ogg", bit_rate=64000)
    signed = sign_sidecar(ogg, identity, GenerationInfo(generator="tts"), name="message.ogg")
    assert signed.mime == "audio/ogg" and signed.manifest_store[4:8] == b"jumb"
    (tmp_path / "message.ogg").write_bytes(ogg)
    (tmp_path / "message.c2pa").write_bytes(signed.manifest_store)
    found = verify_file(tmp_path / "message.ogg", watermark_key=None)  # the sidecar beside it
    assert found.state is State.VALID and not found.embedded
    (tmp_path / "message.ogg").write_bytes(ogg[:-10] + bytes(10))
    changed = verify_file(tmp_path / "message.ogg", watermark_key=None)
    assert changed.state is State.INVALID
    assert "assertion.dataHash.mismatch" in [f.code for f in changed.failures]
    with pytest.raises(UnsupportedFormatError, match="OGG"):
        sign_sidecar(encode_audio(voice, RATE, "wav"), identity, GenerationInfo(generator="tts"))
    refused = CliRunner().invoke(
        cli,
        [
            "sign",
            str(tmp_path / "message.ogg"),
            "-o",
            str(tmp_path / "s.ogg"),
            "--identity",
            str(identity_dir),
            "--model",
            "m",
        ],
    )
    assert refused.exit_code == 4 and "NAME.c2pa" in refused.stderr


def test_batch_refuses_two_ogg_outputs_sharing_one_sidecar(
    identity_dir: Path, tmp_path: Path, voice: np.ndarray
) -> None:
    # a.ogg and a.opus would both keep their credentials in a.c2pa: the second would
    # overwrite the first's, leaving a "stamped" a.ogg whose sidecar belongs to a.opus.
    folder = tmp_path / "in"
    folder.mkdir()
    ogg = encode_audio(voice, RATE, "ogg", bit_rate=64000)
    (folder / "a.ogg").write_bytes(ogg)
    (folder / "a.opus").write_bytes(ogg)
    db = tmp_path / "m.db"
    result = CliRunner().invoke(
        cli, ["stamp", str(folder), "-o", str(tmp_path / "out"), *_stamp_args(identity_dir, db)]
    )
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and "a.c2pa" in result.stderr and "rename" in result.stderr
    assert not (tmp_path / "out" / "a.c2pa").exists()


def test_batch_rerun_stamps_again_when_the_ogg_sidecar_is_gone(
    identity_dir: Path, tmp_path: Path, voice: np.ndarray
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "msg.ogg").write_bytes(encode_audio(voice, RATE, "ogg", bit_rate=64000))
    db, out = tmp_path / "m.db", tmp_path / "out"
    runner = CliRunner()
    first = runner.invoke(cli, ["stamp", str(folder), "-o", str(out), *_stamp_args(identity_dir, db)])
    assert first.exit_code == 0, first.stderr
    (out / "msg.c2pa").unlink()  # the credentials are lost; the audio is still there
    again = runner.invoke(cli, ["stamp", str(folder), "-o", str(out), *_stamp_args(identity_dir, db)])
    assert again.exit_code == 0, again.stderr
    assert "stamped:" in again.stderr and "skipped:" not in again.stderr
    assert (out / "msg.c2pa").is_file()
    assert verify_file_state(out / "msg.ogg") is State.VALID
    # With both files in place a re-run has nothing to do.
    third = runner.invoke(cli, ["stamp", str(folder), "-o", str(out), *_stamp_args(identity_dir, db)])
    assert third.exit_code == 0 and "skipped:" in third.stderr


def verify_file_state(path: Path) -> State:
    from provenance.verify import verify_file

    return verify_file(path, watermark_key=None).state


def test_ffmpeg_decode_errors_read_as_a_plain_reason() -> None:
    # FFmpeg's exception text carries an errno and the stream's internal name ("'7'").
    # One whole Ogg page of zeros (a cut page is refused before FFmpeg is asked).
    with pytest.raises(CorruptInputError) as caught:
        decode_audio(b"OggS" + bytes(22) + b"\x01\xc8" + bytes(200), "junk.ogg")
    message = str(caught.value)
    assert message.startswith("junk.ogg: audio is truncated or corrupt (")
    assert "Errno" not in message and "'" not in message


def test_an_excerpt_decode_is_bounded_in_samples_not_only_seconds() -> None:
    # 60 s of 8-channel silence at 655,350 Hz is a 330 KB FLAC (a body the resolution
    # service accepts) that decodes to 1.3 GB: an excerpt holds at most a minute of
    # 96 kHz stereo, whatever the rate and channels announce.
    import io

    import soundfile

    from provenance._internal.audio import EXCERPT_SAMPLES

    rate, channels = 384_000, 8
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros((rate * 20, channels), np.float32), rate, format="FLAC")
    clip = decode_audio(buffer.getvalue(), "hires.flac", seconds=60.0)
    assert clip.samples.size <= EXCERPT_SAMPLES
    assert clip.samples.shape[1] == channels and len(clip.samples) == EXCERPT_SAMPLES // channels
    whole = decode_audio(buffer.getvalue(), "hires.flac")  # stamping still decodes it all
    assert len(whole.samples) == rate * 20


def test_an_unreachable_resolver_for_audio_warns_and_keeps_the_offline_verdict(
    tmp_path: Path, voice: np.ndarray
) -> None:
    clip = tmp_path / "voice.wav"
    clip.write_bytes(_wav(voice))
    # Nothing listens there: verify asks (the clip's content: it carries no watermark),
    # warns, and keeps the offline verdict.
    result = CliRunner().invoke(
        cli,
        [
            "verify",
            str(clip),
            "--json",
            "--store",
            str(tmp_path / "m.db"),
            "--resolver",
            "http://127.0.0.1:9",
        ],
    )
    assert result.exit_code == 3, result.stderr
    report = json.loads(result.stdout)
    assert report["state"] == "none" and not report["recovered"]
    assert any("http://127.0.0.1:9: cannot reach it" in w for w in report["warnings"]), report["warnings"]
    assert "Traceback" not in result.stderr
