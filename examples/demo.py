"""`make demo`: sign, verify, stamp, strip and recover (pictures and a voice clip), on the embedded defaults.

Uses the development identity and the SQLite manifest store under
$PROVENANCE_HOME (the Makefile points it at .provenance-home/), creating the
identity on first run. Every step prints what a user would see.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

from PIL import Image

import provenance
from provenance._internal.audio import decode_audio, encode_audio
from provenance.keys import default_identity_dir
from provenance.verify import Tally, outcome_of
from provenance.verify import to_text as render

HERE = Path(__file__).resolve().parent
OUT = HERE / "output"
FIXTURES = HERE.parent / "tests" / "fixtures" / "audio"
sys.path.insert(0, str(HERE))
from pipeline import stand_in_generator  # noqa: E402


def banner(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 70 - len(text)))


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    (OUT / "signed").mkdir(parents=True)
    folder = default_identity_dir()
    if not (folder / "signing-key.pem").exists():
        provenance.create_development_identity(folder)
        print(f"created a development identity in {folder}")
    identity = provenance.load_identity_dir(folder)
    print(f"signing as: {identity.subject}  (development identity: {identity.is_development})")
    trust_dev_root = provenance.TrustPolicy.from_files([folder / "root-ca.pem"])

    banner("1. Sign the sample media in examples/media and verify it")
    info = provenance.GenerationInfo(generator="provenance-demo", generator_version="0.1",
                                     model="demo-model", model_version="1", prompt="a demo")
    for sample in sorted((HERE / "media").iterdir()):
        target = OUT / "signed" / sample.name
        signed = provenance.sign_file(sample, target, identity, info)
        print(f"signed {sample.name} ({signed.mime}) -> {target.relative_to(HERE.parent)}")
    for target in sorted((OUT / "signed").iterdir()):
        print(render(str(target.relative_to(HERE.parent)), provenance.verify_file(target)))
    cat = OUT / "signed" / "cat.jpg"
    print("\nThe same file when the verifier trusts the development root:")
    print(render(str(cat.relative_to(HERE.parent)),
                 provenance.verify_file(cat, policy=trust_dev_root)))

    banner("2. An edit keeps the chain of custody")
    edited = Image.open(cat).crop((40, 40, 400, 280))
    buffer = io.BytesIO()
    edited.save(buffer, "JPEG", quality=90)
    chain = provenance.sign_bytes(
        buffer.getvalue(), identity,
        edit=provenance.EditInfo((provenance.Action("c2pa.cropped"),), generator="provenance-demo"),
        parent=cat,
    )
    assert chain.data is not None
    (OUT / "cat-cropped.jpg").write_bytes(chain.data)
    print(render("examples/output/cat-cropped.jpg", provenance.verify_bytes(chain.data)))

    banner("3. Stamp generated images: watermark + signed manifest + store")
    with provenance.open_store() as store:
        stamped = []
        for seed in range(2):
            image = stand_in_generator(seed, (1024, 768))
            result = provenance.stamp(image, identity, provenance.GenerationInfo(
                generator="provenance-demo", model="stand-in-fractal", prompt=f"seed {seed}"),
                store=store, format="JPEG")
            path = OUT / f"stamped-{seed}.jpg"
            path.write_bytes(result.data)
            stamped.append(path)
            print(f"stamped {path.name}: identifier {result.identifier}, {result.manifest_label}")
        print(render(str(stamped[0].relative_to(HERE.parent)),
                     provenance.verify_file(stamped[0], store=store)))

        banner("4. Strip: a re-upload re-encodes (JPEG 80), resizes (0.75) and drops metadata")
        image = Image.open(stamped[0]).convert("RGB")
        w, h = image.size
        shrunk = image.resize((w * 3 // 4, h * 3 // 4), Image.Resampling.BICUBIC)
        stripped = OUT / "stripped.jpg"
        shrunk.save(stripped, "JPEG", quality=80)
        print(render(str(stripped.relative_to(HERE.parent)),
                     provenance.verify_file(stripped, watermark_key=None)))

        banner("5. Recover: the watermark leads back to the signed manifest in the store")
        print(render(str(stripped.relative_to(HERE.parent)),
                     provenance.verify_file(stripped, store=store)))
        print(f"\nmanifest store: {store.path} ({store.count()} entries)")

        banner("5b. A generated voice clip: stamp, then share it as a voice message, then recover")
        # Speech from CMU ARCTIC (speaker aew; attribution in the .txt beside it),
        # standing in for a cloned voice that a text-to-speech model produced.
        source = FIXTURES / "speech_cmu-arctic_aew_a0001-3.ogg"
        print(f"voice: {source.name} ({source.with_suffix('.txt').read_text().splitlines()[1]})")
        clip = decode_audio(source.read_bytes(), source.name)
        voice = OUT / "voice.wav"
        voice.write_bytes(encode_audio(clip.samples, clip.sample_rate, "wav"))
        result = provenance.stamp(voice, identity, provenance.GenerationInfo(
            generator="provenance-demo", model="stand-in-voice-clone"), store=store,
            output=OUT / "stamped-voice.wav")
        voice.unlink()
        print(f"stamped stamped-voice.wav: identifier {result.identifier}, {result.manifest_label}")
        # A messenger keeps 6 s from 2 s in, drops the metadata and re-encodes as MP3 128 kbit/s.
        heard = decode_audio(result.data, "stamped-voice.wav")
        rate = heard.sample_rate
        message = OUT / "voice-message.mp3"
        message.write_bytes(encode_audio(heard.samples[2 * rate : 8 * rate], rate, "mp3", bit_rate=128000))
        print(render(str(message.relative_to(HERE.parent)), provenance.verify_file(message, store=store)))

        banner("6. Many files at once, and the same answers for machines")
        tally = Tally()
        for path in sorted(p for p in OUT.rglob("*") if p.is_file()):
            result = provenance.verify_file(path, store=store)
            tally.add(outcome_of(result.state, [f.code for f in result.failures], result.recovered))
        print(tally.sentence())
        doc = provenance.verify_file(stripped, store=store).to_dict()
        keys = ("state", "ai_generated", "generator", "model", "signer_trusted")
        print(json.dumps({k: doc[k] for k in keys}))


if __name__ == "__main__":
    main()
