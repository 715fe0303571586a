"""``provenance sign``: attach Content Credentials to a file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from cli._identity import identity_options, load_cli_identity
from manifests import Action, DigitalSourceType, EditInfo
from provenance._internal.files import display
from provenance.errors import UsageError
from provenance.generation import GenerationInfo, template_path
from provenance.sign import sign_file

F = TypeVar("F", bound=Callable[..., Any])


def generation_options(func: F) -> F:
    """Options describing how the content was generated (shared with ``stamp``)."""
    options = [
        click.option(
            "--template",
            help="JSON template: a bundled name (generated-image, composite, generated-audio) or a path.",
        ),
        click.option("--generator", help="Name of the application that generated the content."),
        click.option("--generator-version", help="Its version."),
        click.option("--model", help="Name of the AI model."),
        click.option("--model-version", help="Version of the AI model."),
        click.option(
            "--source-type",
            type=click.Choice([d.value for d in DigitalSourceType]),
            help="IPTC digital source type (default trainedAlgorithmicMedia).",
        ),
        click.option(
            "--prompt", help="The prompt; only its SHA-256 digest is stored unless --store-prompt is given."
        ),
        click.option(
            "--prompt-file",
            type=click.Path(path_type=Path, dir_okay=False),
            help="Read the prompt from a file.",
        ),
        click.option("--store-prompt", is_flag=True, help="Store the raw prompt in the manifest."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def generation_info(params: dict[str, object], *, required: bool) -> GenerationInfo | None:
    """Build GenerationInfo from the generation options; None when none were given."""
    prompt = params.get("prompt")
    prompt_file = params.get("prompt_file")
    if prompt is not None and prompt_file is not None:
        raise UsageError("use --prompt or --prompt-file, not both")
    if isinstance(prompt_file, Path):
        try:
            prompt = prompt_file.read_text(encoding="utf-8").rstrip("\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{prompt_file}: cannot read the prompt ({exc})") from None
    fields = {
        "generator": params.get("generator"),
        "generator_version": params.get("generator_version"),
        "model": params.get("model"),
        "model_version": params.get("model_version"),
        "digital_source_type": params.get("source_type"),
        "prompt": prompt,
        "store_prompt": True if params.get("store_prompt") else None,
    }
    template = params.get("template")
    if template:
        path = Path(str(template))
        if not path.exists():
            path = template_path(str(template))
        return GenerationInfo.from_template(path, **fields)
    if not required and all(v is None for v in fields.values()):
        return None
    given = {k: v for k, v in fields.items() if v is not None}
    given.setdefault("generator", "provenance-kit")
    return GenerationInfo.from_dict(given)


@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Where to write the signed file.")
@click.option("--in-place", is_flag=True, help="Sign INPUT itself (replaced atomically).")
@click.option(
    "--parent",
    type=click.Path(path_type=Path),
    help="The original this file was edited from; its credentials become a parentOf ingredient.",
)
@click.option(
    "--component",
    "components",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A file placed into this one (componentOf ingredient). Repeatable.",
)
@click.option(
    "--action",
    "actions",
    multiple=True,
    help="Edit action to record after c2pa.opened (e.g. c2pa.cropped). Repeatable.",
)
@click.option("--no-thumbnail", is_flag=True, help="Do not embed a claim thumbnail.")
@generation_options
@identity_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def sign(
    input_path: Path,
    output: Path | None,
    in_place: bool,
    parent: Path | None,
    components: tuple[Path, ...],
    actions: tuple[str, ...],
    no_thumbnail: bool,
    identity_dir: Path | None,
    key_path: Path | None,
    cert_path: Path | None,
    tsa_url: str | None,
    as_json: bool,
    **generation: object,
) -> None:
    """Sign INPUT with Content Credentials describing how it was generated.

    New content is described with --template or --generator/--model/...; with
    --parent, the file is recorded as an edit of PARENT (add the generation
    options too when the edit was made by an AI model).
    """
    if output is None and not in_place:
        raise click.UsageError("give -o/--output, or --in-place to sign the file itself")
    if output is not None and in_place:
        raise click.UsageError("-o/--output and --in-place exclude each other")
    identity = load_cli_identity(identity_dir, key_path, cert_path, tsa_url)
    info = generation_info(generation, required=parent is None)
    edit = EditInfo(tuple(Action(a) for a in actions)) if actions else None
    result = sign_file(
        input_path,
        output,
        identity,
        info,
        in_place=in_place,
        edit=edit,
        parent=parent,
        components=components,
        thumbnail=not no_thumbnail,
    )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "output": display(result.path or ""),
                    "format": result.mime,
                    "manifest_label": result.manifest_label,
                    "development_identity": identity.is_development,
                }
            )
        )
    else:
        dev = " (development identity)" if identity.is_development else ""
        shown = f"{display(input_path)} -> {display(result.path or '')}"
        click.echo(f"signed {shown} [{result.manifest_label}]{dev}", err=True)
