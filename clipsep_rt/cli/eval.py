"""`clipsep-rt eval`: score a separator on held-out mixtures, or compare query wordings."""

from __future__ import annotations

import argparse
from pathlib import Path

from clipsep_rt.cli.common import TORCH_PRECISIONS, device_argument, encoder_options, query_encoder_arguments, say
from clipsep_rt.errors import ClipsepError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "eval", help="score a separator on held-out mixtures (SDR/SIR/SAR, SDRi, SI-SDR)",
        description="Mix each test clip with a clip of another class (fixed seed), separate it by the text of its "
                    "label (LabelSep: its class vector; PIT: the better of its two outputs), and report BSS Eval v4 "
                    "SDR/SIR/SAR over the whole signal, SDR improvement and SI-SDR: mean +- SEM and median, overall "
                    "and per class. --query-variants instead compares query wordings on the same mixtures.",
    )
    p.add_argument("checkpoint", type=Path, nargs="?", metavar="CHECKPOINT", help="the separator (default: the bundled model)")
    p.add_argument("--data", type=Path, required=True, metavar="INDEX.csv", help="a dataset index (see the training docs)")
    p.add_argument("--split", default="test", help="the index split to draw from (default: test)")
    p.add_argument("--count", type=int, default=100,
                   help="number of distinct mixtures (default: 100; fewer when the split has fewer, said on stderr)")
    p.add_argument("--seed", type=int, default=0, help="mixture seed (default: 0)")
    p.add_argument("--mixtures", type=Path, metavar="FILE.json", help="reuse this list of mixtures, or write it if missing")
    p.add_argument("--ensemble", action="store_true", help="query with the prompt ensemble over the label's paraphrases")
    g = p.add_argument_group("baselines (LabelSep, PIT)")
    g.add_argument("--query-vectors", type=Path, metavar="FILE.npz",
                   help="query with these vectors instead of text: one per class, looked up by the target's label "
                        "(LabelSep's best.queries.npz); default for a labelsep/pit checkpoint: its .queries.npz")
    g.add_argument("--oracle", action="store_true",
                   help="with --query-vectors: separate with every vector and keep, per mixture, the output with the "
                        "best SDR against the target (PIT's oracle selection; default for a pit checkpoint)")
    g = p.add_argument_group("robustness to queries")
    g.add_argument("--query-variants", type=Path, metavar="FILE.json",
                   help='query each mixture with its label, a short and a long paraphrase ({"violin": {"short": ..., '
                        '"long": ...}, ...}) and an unrelated query; report SDRi and output energy per variant')
    g.add_argument("--unrelated-query", metavar="TEXT",
                   help="the unrelated query for --query-variants (default: the file's \"unrelated\", else 'car engine')")
    device_argument(p)
    p.add_argument("--precision", default="auto", choices=TORCH_PRECISIONS)
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON")
    p.add_argument("--markdown", type=Path, metavar="FILE", help="also write the report as markdown")
    query_encoder_arguments(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from clipsep_rt.api import Separator
    from clipsep_rt.io.files import atomic_output
    from clipsep_rt.training import evaluate as ev
    from clipsep_rt.training import query_variants as qv

    if args.query_variants and (args.query_vectors or args.oracle or args.ensemble):
        raise ClipsepError("--query-variants queries by text: it does not combine with --query-vectors, --oracle or --ensemble")
    if args.query_vectors and args.ensemble:
        raise ClipsepError("--ensemble queries by text: it does not combine with --query-vectors")
    if args.unrelated_query is not None and not args.query_variants:
        raise ClipsepError("--unrelated-query belongs to --query-variants")
    variants = qv.QueryVariants.from_file(args.query_variants, args.unrelated_query) if args.query_variants else None
    # the templates follow the query mode (--ensemble), not --prompt-ensemble
    encoder = encoder_options(args, prompt_ensemble=False)
    separator = Separator.from_checkpoint(args.checkpoint, device=args.device, precision=args.precision, encoder=encoder)
    vectors, oracle = args.query_vectors, args.oracle
    kind = separator.query_encoder if separator.query_encoder in ("labelsep", "pit") else None
    if kind and (variants is not None or args.ensemble):
        raise ClipsepError(f"{args.checkpoint} is a {kind} model: it is queried by learned vectors, not by text")
    if kind and vectors is None:
        vectors = args.checkpoint.with_suffix(".queries.npz")
        if not vectors.is_file():
            raise ClipsepError(f"{args.checkpoint} is a {kind} model: give its query vectors with --query-vectors FILE.npz")
        oracle = oracle or kind == "pit"
    if oracle and vectors is None:
        raise ClipsepError("--oracle needs --query-vectors FILE.npz")
    if args.mixtures and args.mixtures.exists():
        mixtures = ev.read_mixture_list(args.mixtures)
    else:
        mixtures = ev.make_eval_mixtures(args.data, split=args.split, count=args.count, seed=args.seed, log=say)
        if args.mixtures:
            ev.write_mixture_list(mixtures, args.mixtures)
    if variants is not None:
        variants.check(mixtures, f"query variants {args.query_variants}")
        report = qv.evaluate_query_variants(separator, mixtures, variants, log=say)
        markdown, data = qv.variant_report_markdown(report), qv.variant_report_json(report)
    else:
        queries = ev.query_vector_strategy(vectors, oracle=oracle) if vectors is not None else None
        report = ev.evaluate(separator, mixtures, "ensemble" if args.ensemble else "label", log=say, queries=queries)
        markdown, data = ev.report_markdown(report), ev.report_json(report)
    print(markdown, end="")
    for path, text in ((args.json, data), (args.markdown, markdown)):
        if path:
            with atomic_output(path, overwrite=True) as temp:
                temp.write_text(text)
    return 0
