"""Find the windows most like a query in an embedded folder (cosine similarity); hits as a manifest.

    earshot search QUERY --index EMBEDDINGS.parquet [-k 10] [--start S --end S] [--out hits.csv --label L]

QUERY is an audio file (from --start to --end seconds when given), embedded by the embedder that made the
index, or a row id of the index (query by example; that row itself is left out). Small indexes are searched
exactly; large ones through an approximate index built once and stored beside the parquet (EMB.index/),
rebuilt when the parquet changes. `--out` writes path,label,start_s,end_s,similarity,row to label (jobs.train
reads path and label; it does not cut the windows yet).
"""

from __future__ import annotations

from jobs._cli import add_quiet_arg, run
from jobs._cli import parser as new_parser


def parser():
    p = new_parser("earshot search", __doc__)
    p.add_argument("query", metavar="QUERY", help="audio file, or a row id of the index")
    p.add_argument("--index", required=True, help="an `earshot embed` output (EMB.parquet)")
    p.add_argument("-k", "--top-k", dest="k", type=int, default=10, help="hits to return")
    p.add_argument("--start", type=float, default=None, help="query from this second of the file")
    p.add_argument("--end", type=float, default=None, help="query up to this second of the file")
    p.add_argument("--out", default=None, metavar="MANIFEST.csv", help="also write the hits as a manifest")
    p.add_argument("--label", default="", help="label to put in the manifest's label column")
    p.add_argument("--device", default=None, help="torch device for embedding the query")
    add_quiet_arg(p, "no notes, only the hits")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.k < 1:
        raise ValueError(f"-k must be at least 1, got {args.k}")
    from learner.embed.index import EmbeddingIndex
    from learner.embed.search import embedder_of, search, write_manifest

    index = EmbeddingIndex.open(args.index)
    embedder = None
    if not args.query.isdigit():
        embedder = embedder_of(args.index, device=args.device)
    hits = search(index, args.query, args.k, start_s=args.start, end_s=args.end, embedder=embedder)
    print("rank\tsimilarity\tstart_s\tend_s\tpath")
    for i, h in enumerate(hits, 1):
        print(f"{i}\t{h.similarity:.4f}\t{h.start_s:.2f}\t{h.end_s:.2f}\t{h.path}")
    if args.out:
        write_manifest(hits, args.out, args.label)
        print(f"earshot: {len(hits)} hit(s) → {args.out}")
    return 0


if __name__ == "__main__":
    run(main)
