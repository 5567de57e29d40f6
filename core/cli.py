"""Command line: a thin layer over core. `python -m core --help`."""
from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any, Sequence

from . import settings


def _store(args: argparse.Namespace):
    from .store import open_store

    return open_store(args.qdrant_url or settings.get("QDRANT_URL"), settings.get("QDRANT_API_KEY"),
                      args.store_path or settings.get("ATLAS_STORE_PATH"))


def cmd_ingest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from . import api, models
    from .formats import SourceOptions, scan_source
    from .ingest import summary_lines
    from .models.runtime import describe

    options = SourceOptions(path_column=getattr(args, "path_column", "") or None,
                            label_column=getattr(args, "label_column", None),
                            id_column=getattr(args, "id_column", "auto") or None,
                            images_dir=getattr(args, "images_dir", "") or None)
    # bad sources fail before a model loads
    scan = scan_source(args.folder, options, cache_dir=settings.get("ATLAS_CACHE_DIR"))
    choice = models.choose(args.model or settings.get("ATLAS_MODEL"), settings.get("ATLAS_CLIP_WEIGHTS"))
    print(f"model: {choice.name} ({choice.reason})", file=sys.stderr)
    model = models.load(choice, settings.get("ATLAS_DEVICE"), settings.get("ATLAS_CPU_BF16"))
    print(f"runs on: {describe(model)}", file=sys.stderr)
    bar = tqdm(total=0, unit="img", desc=f"ingest {args.collection}", disable=args.quiet, file=sys.stderr)

    def on_progress(p) -> None:
        bar.total = p.total
        bar.update(p.done - bar.n)

    with _store(args) as store:
        report = api.ingest(args.folder, args.collection, model=model, store=store, base_url=args.base_url or None,
                            batch_size=args.batch_size or None, prune=args.prune, progress=on_progress, scan=scan,
                            model_reason=f"{choice.reason}; runs on {describe(model)}")
    bar.close()
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
        return 0
    for line in summary_lines(report.as_dict()):
        print(line)
    for s in report.skipped[:20]:
        print(f"  skipped {s.path}: {s.reason}")
    if len(report.skipped) > 20:
        print(f"  ... and {len(report.skipped) - 20} more")
    if report.report_csv:
        print(f"skipped files listed in {report.report_csv}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import build_demo

    demo = build_demo(args.out, per_class=args.per_class)
    print(f"demo data: {demo.images} images from {demo.source}, {demo.planted} planted mislabels "
          f"(ground truth: {demo.ground_truth})", file=sys.stderr)
    if args.no_ingest:
        return 0
    args.folder, args.base_url, args.batch_size, args.prune = str(demo.folder), "", 0, False
    code = cmd_ingest(args)
    if code == 0:
        print(f"Next: open the app (.venv/bin/python -m ui.serve), pick the collection '{args.collection}' and run "
              "the Audit page to find the planted mislabels.", file=sys.stderr)
    return code


def cmd_project(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .cache import ArrayCache
    from .exporting import selection_table, to_csv
    from .maps import compute_map
    from .projection import params_from

    params = params_from(args.method, n_neighbors=args.n_neighbors, min_dist=args.min_dist,
                         perplexity=args.perplexity, seed=args.seed)
    filt = {args.label_field: args.label} if args.label else None
    bar = tqdm(total=100, desc=f"{args.method} {args.collection}", disable=args.quiet, file=sys.stderr,
               bar_format="{desc}: {percentage:3.0f}% {postfix}")

    def on_progress(what: str, fraction: float) -> None:
        bar.n = int(fraction * 100)
        bar.set_postfix_str(what)

    with _store(args) as store:
        result = compute_map(store, args.collection, params, vector=args.vector or None, filter=filt,
                             max_points=args.max_points or settings.get("ATLAS_MAP_MAX_POINTS"),
                             cache=ArrayCache(f"{settings.get('ATLAS_CACHE_DIR')}/results"), progress=on_progress)
    bar.close()
    table = selection_table(result.points, result.coords, list(range(len(result.points))), args.label_field)
    to_csv(table, args.out)  # formula cells neutralised, as in every CSV export
    summary = {"collection": args.collection, "points": len(result.points), "total": result.points.total,
               "method": result.method, "params": result.params, "notes": result.notes, "cached": result.cached,
               "seconds": round(result.seconds, 2), "out": str(args.out)}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{result.method} map of {len(result.points):,} of {result.points.total:,} points "
              f"({'from cache' if result.cached else f'{result.seconds:.1f} s'}) written to {args.out}")
        for note in result.notes:
            print(f"  note: {note}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from . import api
    from .exporting import to_csv

    checks = [c.strip() for c in args.checks.split(",") if c.strip()]
    with _store(args) as store:
        report = api.audit(args.collection, store=store, label_field=args.label_field, checks=checks, k=args.k,
                           threshold=args.threshold, operating_point=args.operating_point,
                           duplicate_similarity=args.duplicate_similarity, write_scores=args.write_scores)
    flagged = report.table[report.table[[f"is_{c}_issue" for c in report.results]].any(axis=1)]
    if args.out:
        to_csv(flagged, args.out)  # formula cells neutralised, as in every CSV export
    summary = {"collection": args.collection, "points": len(report.points), "seconds": round(report.seconds, 2),
               "checks": {name: _jsonable(r.summary) for name, r in report.results.items()},
               "flagged_points": len(flagged), "notes": report.notes, "out": args.out or None,
               "scores_written": len(report.points) if args.write_scores else 0}
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
        return 0
    print(f"{args.collection}: audited {len(report.points):,} points in {report.seconds:.1f} s")
    for name, r in report.results.items():
        flagged_n = int(report.table[f"is_{name}_issue"].sum())  # the same rows the CSV holds
        print(f"  {name}: {flagged_n:,} flagged" + (f" ({r.summary['note']})" if "note" in r.summary else ""))
        if name == "label":
            for line in _label_lines(r.summary):
                print(f"    {line}")
    if args.out:
        print(f"suspects written to {args.out}")
    if args.write_scores:
        print(f"scores written into the payload of {len(report.points):,} points (label_score, suggested_label, "
              "is_label_issue, ..., audit_at, audit_how)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from . import api
    from .store import parse_point_id

    ids = None
    if args.ids:
        try:
            with open(args.ids, encoding="utf-8-sig") as f:
                lines = [line.strip().split(",")[0] for line in f if line.strip()]
        except OSError as exc:
            raise ValueError(f"--ids: cannot read {args.ids}: {exc.strerror or exc}") from None
        if lines and lines[0].lower() == "id":  # a CSV with a header (e.g. an earlier export)
            lines = lines[1:]
        ids = [parse_point_id(v) for v in lines]
    with _store(args) as store:
        report = None
        if args.audit or args.suspects:
            report = api.audit(args.collection, store=store, checks=["label"], label_field=args.label_field,
                               operating_point=args.operating_point)
        result = api.export(args.collection, args.out, args.format or None, store=store, labels=args.label,
                            ids=ids, audit=report, suspects_only=args.suspects, image_root=args.image_root or None,
                            mode=args.mode, overwrite=args.overwrite, label_field=args.label_field,
                            document_root_path=args.document_root_path or None)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
        return 0
    for line in result.lines():
        print(line)
    for s in result.skipped[:20]:
        print(f"  left out {s.path}: {s.reason}")
    if len(result.skipped) > 20:
        print(f"  ... and {len(result.skipped) - 20} more")
    return 0


def cmd_import_labelstudio(args: argparse.Namespace) -> int:
    from . import api

    with _store(args) as store:
        result = api.import_labelstudio(args.collection, args.export, store=store, allow_new_labels=args.new_labels,
                                        label_field=args.label_field)
    if args.json:
        print(json.dumps(_jsonable_deep(result.as_dict()), indent=2, ensure_ascii=False))
        return 0
    print(f"{args.collection}: {result.relabelled:,} relabelled, {result.confirmed:,} confirmed, "
          f"{result.unchanged:,} already confirmed, {result.not_reviewed:,} not reviewed yet, "
          f"{len(result.problems):,} tasks left out (undo batch {result.batch})")
    for s in result.problems[:20]:
        print(f"  left out {s.path}: {s.reason}")
    if len(result.problems) > 20:
        print(f"  ... and {len(result.problems) - 20} more")
    return 0


def _label_lines(summary: dict) -> list[str]:
    """How far to trust the label flags: the calibrated statement, or why there is none; trusted decisions."""
    lines = []
    calibration = summary.get("calibration")
    if calibration:
        lines.append(calibration["sentence"])
        point = calibration["operating_point"]
        lines.append(f"operating point {point if not point[:1].isdigit() else f'target precision {float(point):g}'}:"
                     f" labels scoring below {calibration['threshold']:.3f} are flagged")
    elif summary.get("operating_point") is None and summary.get("threshold") is not None:
        lines.append(f"fixed threshold {summary['threshold']:g}: uncalibrated (leave out --threshold for an estimate "
                     "of how many flags are real errors)")
    if summary.get("trusted"):
        n = summary["trusted"]
        lines.append(f"{n:,} {'label' if n == 1 else 'labels'} decided by a person "
                     f"{'is' if n == 1 else 'are'} trusted: never flagged, and weighing more in the ranking")
    return lines


def _unknown_labels() -> list[str]:
    return [u.strip() for u in settings.get("ATLAS_UNKNOWN_LABELS").split(",")]


def _jsonable(d: dict) -> dict:
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in d.items()}


REVIEW_RERANK_POINTS = 20_000  # above this many points, re-rank every 10 decisions, not after each one
REVIEW_HELP = ("a = accept the suggestion, k = keep (the label is correct), r LABEL = relabel to LABEL "
               "(r! LABEL creates a new label), s = skip, u = undo the last decision, q = quit")


def cmd_review(args: argparse.Namespace) -> int:
    """Suspects one at a time, worst first; each decision is written at once (with history, undoable), becomes a
    trusted label, and the audit refits and re-ranks the rest. Commands come from standard input, one a line."""
    from .audit import run_audit
    from .cache import ArrayCache
    from .labels import LabelError, check_label, confirm, default_user, relabel, undo

    out = sys.stderr if args.json else sys.stdout  # with --json, stdout carries only the summary
    interactive = sys.stdin.isatty()
    by = args.by or settings.get("ATLAS_USER") or default_user()
    cache = ArrayCache(f"{settings.get('ATLAS_CACHE_DIR')}/results")
    counts = {"accepted": 0, "kept": 0, "relabelled": 0, "skipped": 0, "undone": 0}
    log: list[dict[str, Any]] = []  # one row per decision, for --json
    undo_stack: list[tuple[Any, list]] = []  # (point id, its changes)
    seen: set = set()
    again = None  # a point whose decision was undone: shown next
    rerankings, since_rerank, shown, every = 0, 0, 0, args.rerank_every

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    def audit():
        return run_audit(store, args.collection, label_field=args.label_field, checks=["label"], k=args.k,
                         operating_point=args.operating_point, unknown_labels=_unknown_labels(), cache=cache)

    def statement(report) -> str | None:
        summary = report.results["label"].summary if "label" in report.results else {}
        return (summary.get("calibration") or {}).get("sentence") or summary.get("note")

    with _store(args) as store:
        report = audit()
        if "label" not in report.results or report.results["label"].summary.get("classes", 0) < 2:
            note = report.results["label"].summary.get("note") if "label" in report.results else None
            raise ValueError(note or f"'{args.collection}' has no labels to review (label field "
                             f"'{args.label_field}').")
        every = every or (1 if len(report.points) <= REVIEW_RERANK_POINTS else 10)
        stored = {str(p.get(args.label_field)): p.get(args.label_field) for p in report.points.payloads
                  if p.get(args.label_field) is not None}  # the table holds labels as text; write them as stored
        say(f"{args.collection}: {len(report.points):,} points, "
            f"{int(report.table['is_label_issue'].sum()):,} suspects at the {args.operating_point} operating point")
        if statement(report):
            say(statement(report))
        if args.decisions:
            shown = _apply_decisions(args, store, report, stored, by, counts, log)
            since_rerank = 1 if shown else 0
        else:
            say(REVIEW_HELP)
        while not args.decisions and (not args.limit or shown < args.limit):
            table = report.table
            if again is not None and (table["id"] == again).any():
                row = table[table["id"] == again].iloc[0]
            else:
                suspects = report.suspects("label")
                suspects = suspects[~suspects["id"].isin(seen)]
                if suspects.empty:
                    say("No more suspects at this operating point.")
                    break
                row = suspects.iloc[0]
            again = None
            pid, label, suggested = row["id"], row["label"], row["suggested_label"]
            has_suggestion = isinstance(suggested, str) and suggested != label
            shown += 1
            seen.add(pid)
            say("")
            say(f"[{shown}] {row.get('file_name') or pid}" + (f"  ({row['path']})" if row.get("path") else "")
                + f"  id {pid}")
            say(f"    given: {label}   suggested: {suggested if has_suggestion else '-'}"
                + (f" ({row['suggestion_confidence']:.0%})" if has_suggestion else "")
                + f"   label score {row['label_score']:.3f}"
                + (f"   neighbours agreeing {row['neighbour_agreement']:.0%}"
                   if row["neighbour_agreement"] == row["neighbour_agreement"] else ""))
            while True:
                print(f"[a/k/r LABEL/s/u/q{'' if has_suggestion else ' (no suggestion to accept)'}] > ", end="",
                      file=out, flush=True)
                line = sys.stdin.readline()
                if not line:  # end of input: stop as if q
                    line = "q"
                    if not interactive:
                        say("q")
                elif not interactive:
                    say(line.rstrip("\n"))  # a transcript reads like a session
                command, _, rest = line.strip().partition(" ")
                command, rest = command.lower(), rest.strip()
                changes = None
                try:
                    if command == "q":
                        break
                    if command == "s":
                        counts["skipped"] += 1
                        log.append({"id": str(pid), "decision": "skip", "label": label})
                    elif command == "a":
                        if not has_suggestion:
                            say("There is no other label to accept: keep (k), relabel (r LABEL) or skip (s).")
                            continue
                        changes = relabel(store, args.collection, [pid], stored.get(suggested, suggested), by,
                                          args.label_field)
                        counts["accepted"] += 1
                        log.append({"id": str(pid), "decision": "accept", "old": label, "label": suggested})
                    elif command == "k":
                        changes = confirm(store, args.collection, [pid], by, args.label_field)
                        counts["kept"] += 1
                        log.append({"id": str(pid), "decision": "keep", "label": label})
                    elif command in ("r", "r!"):
                        new = check_label(rest) if rest else None
                        if new is None:
                            say("Give the new label after r, e.g. r cat.")
                            continue
                        if new not in stored and command == "r":
                            say(f"No point has the label '{new}' yet: check the spelling, or type r! {new} to "
                                "create it.")
                            continue
                        changes = relabel(store, args.collection, [pid], stored.get(new, new), by, args.label_field)
                        stored.setdefault(new, new)
                        counts["relabelled"] += 1
                        log.append({"id": str(pid), "decision": "relabel", "old": label, "label": new})
                    elif command == "u":
                        if not undo_stack:
                            say("Nothing to undo yet.")
                            continue
                        undo_pid, undo_changes = undo_stack.pop()
                        undo(store, undo_changes, by, args.label_field)
                        counts["undone"] += 1
                        log.append({"id": str(undo_pid), "decision": "undo"})
                        seen.discard(undo_pid)
                        again = undo_pid  # show it again, to decide anew
                        seen.discard(pid)  # the one on screen comes back after it
                        shown -= 2  # neither counts as reviewed now
                        say(f"Undid the decision on {undo_pid}.")
                        since_rerank = every  # the undone label is no longer trusted: re-rank now
                    else:
                        say(REVIEW_HELP)
                        continue
                except LabelError as exc:
                    say(f"error: {exc}")
                    continue
                break
            if command == "q":
                seen.discard(pid)
                shown -= 1
                break
            if changes:
                undo_stack.append((pid, changes))
            if command in ("a", "k", "r", "r!"):
                if not changes:
                    say("Nothing changed: the point already had that label (or was deleted meanwhile).")
                since_rerank += 1
            if since_rerank >= every:
                report = audit()  # the decisions are trusted labels now: refit, re-rank the rest
                rerankings += 1
                since_rerank = 0
                if rerankings % 10 == 0 and statement(report):
                    say(f"  now: {statement(report)}")
        if since_rerank:
            report = audit()
            rerankings += 1
    decisions = counts["accepted"] + counts["kept"] + counts["relabelled"] - counts["undone"]
    final = report.results["label"].summary
    summary = {"collection": args.collection, "operating_point": str(args.operating_point), "shown": shown,
               **counts, "decisions": decisions, "rerankings": rerankings,
               "suspects_left": int(report.table["is_label_issue"].sum()), "trusted": final.get("trusted", 0),
               "calibration": final.get("calibration"), "log": log}
    say("")
    say(f"Reviewed {shown:,} suspect{'' if shown == 1 else 's'}: {counts['accepted']} accepted, {counts['kept']} kept, "
        f"{counts['relabelled']} relabelled, {counts['skipped']} skipped, {counts['undone']} undone; "
        f"re-ranked {rerankings} time{'' if rerankings == 1 else 's'}. {summary['suspects_left']:,} suspects left "
        f"({summary['trusted']:,} label{'' if summary['trusted'] == 1 else 's'} trusted).")
    if statement(report):
        say(statement(report))
    if args.json:
        print(json.dumps(_jsonable_deep(summary), indent=2, ensure_ascii=False))
    return 0


DECISIONS = {"a": "accept", "accept": "accept", "k": "keep", "keep": "keep", "r": "relabel", "relabel": "relabel",
             "s": "skip", "skip": "skip"}


def _apply_decisions(args: argparse.Namespace, store, report, stored: dict, by: str, counts: dict,
                     log: list) -> int:
    """`review --decisions FILE.csv`: columns id, decision (accept, keep, relabel, skip) and label (for relabel).
    Every row is checked before anything is written; the changes form one batch. Returns the rows applied."""
    import csv

    from .labels import check_label, confirm, new_batch, relabel
    from .store import parse_point_id

    try:
        with open(args.decisions, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = reader.fieldnames or []
    except OSError as exc:
        raise ValueError(f"--decisions: cannot read {args.decisions}: {exc.strerror or exc}") from None
    if not {"id", "decision"} <= {h.strip().lower() for h in header if h}:
        raise ValueError(f"--decisions: {args.decisions} needs the columns id and decision (and label for relabel).")
    table = report.table.set_index(report.table["id"].astype(str))
    plan = []
    for n, raw in enumerate(rows, start=2):  # line numbers as a spreadsheet shows them
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        where = f"--decisions line {n}"
        try:
            pid = parse_point_id(row["id"])
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if str(pid) not in table.index:
            raise ValueError(f"{where}: no point {row['id']} in '{args.collection}'.")
        decision = DECISIONS.get(row["decision"].lower())
        if decision is None:
            raise ValueError(f"{where}: unknown decision '{row['decision']}': use accept, keep, relabel or skip.")
        point = table.loc[str(pid)]
        new = None
        if decision == "accept":
            new = point["suggested_label"]
            if not isinstance(new, str) or new == point["label"]:
                raise ValueError(f"{where}: point {row['id']} has no other suggested label to accept.")
        if decision == "relabel":
            new = row.get("label", "")
            try:
                check_label(new)
            except Exception as exc:
                raise ValueError(f"{where}: {exc}") from None
            if new not in stored:
                raise ValueError(f"{where}: no point has the label '{new}' yet; check the spelling (the review "
                                 "creates no new labels from a file).")
        plan.append((pid, decision, point["label"], new))
    batch = new_batch()
    for pid, decision, old, new in plan:
        if decision == "keep":
            confirm(store, args.collection, [pid], by, args.label_field, batch=batch)
            counts["kept"] += 1
            log.append({"id": str(pid), "decision": "keep", "label": old})
        elif decision in ("accept", "relabel"):
            relabel(store, args.collection, [pid], stored.get(new, new), by, args.label_field, batch=batch)
            counts["accepted" if decision == "accept" else "relabelled"] += 1
            log.append({"id": str(pid), "decision": decision, "old": old, "label": new})
        else:
            counts["skipped"] += 1
            log.append({"id": str(pid), "decision": "skip", "label": old})
    return len(plan)


def _jsonable_deep(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable_deep(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable_deep(v) for v in value]
    return value.item() if hasattr(value, "item") else value


def cmd_relabel(args: argparse.Namespace) -> int:
    from .labels import default_user, relabel
    from .store import parse_point_id

    point = parse_point_id(args.point)
    with _store(args) as store:
        known = set(map(str, store.count_by(args.collection, args.label_field)))
        if args.label not in known and not args.new_label:
            raise ValueError(f"No point in '{args.collection}' has the label '{args.label}' yet. Check the "
                             "spelling, or pass --new-label to create it.")
        changes = relabel(store, args.collection, [point], args.label, by=settings.get("ATLAS_USER") or default_user(),
                          label_field=args.label_field)
        # relabel skips a point that already has the label: tell that apart from a missing point
        exists = bool(changes) or bool(store.retrieve(args.collection, [point]).ids)
    if not exists:
        raise LookupError(f"Point {args.point} does not exist in '{args.collection}'.")
    if not changes:
        print(json.dumps({"id": str(point), "unchanged": True, "label": args.label}, ensure_ascii=False)
              if args.json else f"{point}: already labelled '{args.label}'; nothing changed")
        return 0
    change = changes[0]
    result = {"id": change.id, "old_label": change.old_label, "new_label": change.new_label, "at": change.at,
              "by": change.by}
    print(json.dumps(result, ensure_ascii=False) if args.json else
          f"{change.id}: {change.old_label} -> {change.new_label}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    import time

    from .search import (image_query_vector, model_for, point_vector, read_image_file, search, hits_table,
                         text_query_vector)

    started = time.perf_counter()
    filt = {args.label_field: args.label} if args.label else None
    max_bytes = settings.get("ATLAS_MAX_UPLOAD_MB") * 10**6
    data = read_image_file(args.image, max_bytes) if args.image is not None else None  # fails before a model loads
    with _store(args) as store:
        spec = store.collection_info(args.collection).vector(args.vector or None)
        if args.point is not None:
            vec = point_vector(store, args.collection, args.point, spec.name)
        else:
            model = model_for(spec.name, settings.get("ATLAS_CLIP_WEIGHTS"), settings.get("ATLAS_DEVICE"),
                              settings.get("ATLAS_CPU_BF16"))
            if data is None:
                vec = text_query_vector(model, args.text)
            else:
                vec = image_query_vector(model, data, max_bytes, settings.get("ATLAS_MAX_IMAGE_PIXELS"))
        result = search(store, args.collection, vec, using=spec.name, k=args.k, filter=filt, hnsw_ef=args.hnsw_ef,
                        exact=args.exact, min_score=args.min_score, started=started,
                        exclude=[args.point] if args.point is not None else ())
    rows = hits_table(result.hits, args.label_field)
    if args.json:
        print(json.dumps({"collection": args.collection, "query_ms": round(result.milliseconds, 2),
                          "total_ms": round(result.total_milliseconds, 1), "hits": rows}, indent=2, ensure_ascii=False))
        return 0
    for r in rows:
        print(f"{r['rank']:>3}  {r['score']:.4f}  {r['label']}  {r['file_name'] or ''}  {r['id']}")
    print(f"{len(rows)} results; query {result.milliseconds:.1f} ms, total {result.total_milliseconds:.0f} ms")
    return 0


def collection_summaries(store, label_field: str = "label") -> list[dict[str, Any]]:
    """One row per collection. Labels are counted as the app and the audit count them: a value that means "no
    label" (ATLAS_UNKNOWN_LABELS, e.g. a folder named "unlabeled") is counted under `unlabeled`, not as a label."""
    from .catalog import summarize

    out = []
    for info in store.list_collections():
        s = summarize(store, info.name, label_field)
        out.append({"name": info.name, "points": info.points,
                    "vectors": [{"name": v.name, "size": v.size, "distance": v.distance} for v in info.vectors],
                    "model": info.embeddings[0].name if len(info.embeddings) == 1 else None,
                    "labels": s.labels, "unlabeled": s.unlabeled})
    return out


def cmd_collections(args: argparse.Namespace) -> int:
    with _store(args) as store:
        rows = collection_summaries(store, args.label_field)
        where = store.describe()
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if not rows:
        print(f"No collections in {where}. Create one with: python -m core ingest FOLDER --collection NAME")
        return 0
    print(where)
    for r in rows:
        vecs = ", ".join(f"{v['name'] or '(unnamed)'} {v['size']}-d" for v in r["vectors"])
        labels = ", ".join(f"{k} {v}" for k, v in list(r["labels"].items())[:12])
        more = f" (+{len(r['labels']) - 12} more)" if len(r["labels"]) > 12 else ""
        print(f"- {r['name']}: {r['points']} points; vectors {vecs}" + (f"; labels {labels}{more}" if labels else "")
              + (f"; unlabeled {r['unlabeled']}" if r["unlabeled"] else ""))
    return 0


def cmd_warmup(args: argparse.Namespace) -> int:
    from .warmup import cache_dir, warm_up

    def say(what: str) -> None:
        if not args.quiet:
            print(f"compiling: {what}", file=sys.stderr)

    seconds = warm_up(say, force=args.force)
    if not args.quiet or seconds:
        print(f"map code compiled into {cache_dir()} in {seconds:.0f} s" if seconds else
              f"map code already compiled in {cache_dir()}", file=sys.stderr)
    return 0


def cmd_hash_password(args: argparse.Namespace) -> int:
    from .auth import hash_password

    if args.stdin:  # scripts: the password on standard input, never on the command line (shell history, ps)
        password = sys.stdin.readline().rstrip("\n")
    else:
        import getpass

        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("error: the two passwords differ; nothing was written.", file=sys.stderr)
            return 1
    digest = hash_password(password)
    if args.user:
        print(f"[atlas_users.{json.dumps(args.user)}]\npassword_hash = {json.dumps(digest)}\n"
              f"role = {json.dumps(args.role)}")
    else:
        print(digest)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Image Atlas command line.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--qdrant-url", default="", help="Qdrant server URL (default: setting QDRANT_URL; "
                        "empty means the embedded engine)")
    common.add_argument("--store-path", default="", help="embedded engine folder (default: ATLAS_STORE_PATH)")
    common.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", parents=[common], help="embed a folder of labeled images, a manifest (CSV/Parquet) "
                       "or a Hugging Face dataset into a collection")
    p.add_argument("folder", help="a folder with one subfolder per label (apple/1.jpg, banana/2.png, ...; split "
                   "folders train/apple/1.jpg work too; a folder without subfolders is ingested as unlabeled), a "
                   "manifest .csv/.tsv/.parquet/.jsonl (image path or URL and label per row, paths relative to it), "
                   "or a Hugging Face dataset folder written by save_to_disk")
    p.add_argument("--path-column", default="", help="manifest: the column of image paths or URLs (default: "
                   "detected: path, image, file_name, url, ...)")
    p.add_argument("--label-column", default=None, help="manifest or dataset: the label column (default: detected: "
                   "label, class, category, ... or the ClassLabel); '' for none (all unlabeled)")
    p.add_argument("--id-column", default="auto", help="manifest or dataset: the column of point ids (default auto: "
                   "'id' when every value is a point id, as in an export; '' for ids from the image paths)")
    p.add_argument("--images-dir", default="", help="Hugging Face dataset: where its images are extracted (default: "
                   "under ATLAS_CACHE_DIR/datasets)")
    p.add_argument("--collection", required=True, help="collection name (created when missing)")
    p.add_argument("--model", default="", help="auto, clip-vit-b-32, effnet-lite0 or open_clip:<arch> "
                   "(default: ATLAS_MODEL)")
    p.add_argument("--base-url", default="", help="URL where the folder is served; stored as image_url")
    p.add_argument("--batch-size", type=int, default=0, help="images per model batch (default: ATLAS_BATCH_SIZE)")
    p.add_argument("--prune", action="store_true", help="delete points whose files are gone from the folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=cmd_ingest)

    p = sub.add_parser("demo", parents=[common], help="build the demo dataset (planted mislabels) and ingest it")
    p.add_argument("--out", default="data/demo", help="folder for the demo images and ground_truth.csv")
    p.add_argument("--per-class", type=int, default=200, help="images per class")
    p.add_argument("--collection", default="demo", help="collection to ingest into")
    p.add_argument("--model", default="", help="model (default: ATLAS_MODEL)")
    p.add_argument("--no-ingest", action="store_true", help="only build the folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=cmd_demo)

    p = sub.add_parser("project", parents=[common], help="2D map of a collection (UMAP, t-SNE, PCA) as CSV")
    p.add_argument("--collection", required=True)
    p.add_argument("--method", default="umap", choices=["umap", "tsne", "pca"])
    p.add_argument("--out", default="coords.csv", help="CSV: id, label, path, image_url, x, y, payload fields")
    p.add_argument("--vector", default="", help="vector name, for collections with several")
    p.add_argument("--label-field", default="label")
    p.add_argument("--label", action="append", help="only points with this label (repeatable)")
    p.add_argument("--max-points", type=int, default=0, help="sample above this many (default ATLAS_MAP_MAX_POINTS)")
    p.add_argument("--n-neighbors", type=int, default=None, help="UMAP (default 15)")
    p.add_argument("--min-dist", type=float, default=None, help="UMAP (default 0.1)")
    p.add_argument("--perplexity", type=float, default=None, help="t-SNE (default 30)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 42)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=cmd_project)

    p = sub.add_parser("audit", parents=[common], help="find label errors, outliers and near-duplicates")
    p.add_argument("--collection", required=True)
    p.add_argument("--checks", default="label,outlier,duplicate", help="comma-separated: label,outlier,duplicate")
    p.add_argument("--k", type=int, default=10, help="neighbours per point (default 10)")
    p.add_argument("--operating-point", default="balanced", metavar="{precision,balanced,recall,TARGET}",
                   help="how many labels to flag: precision (expected precision >= 0.9), balanced (best expected "
                   "F1; the default), recall (find about 90%% of the wrong labels), or a target precision such as "
                   "0.8. The audit calibrates itself by planting label flips in memory")
    p.add_argument("--threshold", type=float, default=None,
                   help="instead of an operating point: flag labels whose out-of-sample probability is below this "
                   "fixed number (uncalibrated)")
    p.add_argument("--duplicate-similarity", type=float, default=None,
                   help="near-duplicates at or above this cosine (default: an adaptive rule fitted to the collection)")
    p.add_argument("--label-field", default="label")
    p.add_argument("--out", default="", help="CSV of the flagged points with every check's scores")
    p.add_argument("--write-scores", action="store_true", help="also store each point's scores in its payload "
                   "(label_score, suggested_label, suggestion_confidence, is_label_issue, outlier_score, ...; with "
                   "audit_at and audit_how), so that other services can filter on them")
    p.set_defaults(fn=cmd_audit)

    p = sub.add_parser("export", parents=[common], help="write a collection's current labels as a manifest, an "
                       "ImageFolder tree, a Hugging Face dataset or Label Studio tasks")
    p.add_argument("--collection", required=True)
    p.add_argument("--out", required=True, help="file (.csv, .parquet, .json) or folder (imagefolder, hf)")
    p.add_argument("--format", default=None, choices=["manifest", "imagefolder", "hf", "labelstudio"],
                   help="default: from --out (.csv/.parquet manifest, .json labelstudio)")
    p.add_argument("--label", action="append", help="only points with this label (repeatable)")
    p.add_argument("--ids", default="", metavar="FILE", help="only these points: a file with one id per line (or a "
                   "CSV whose first column is id)")
    p.add_argument("--audit", action="store_true", help="run the label check and add the suggested label and scores")
    p.add_argument("--suspects", action="store_true", help="only the audit's label suspects (implies --audit)")
    p.add_argument("--operating-point", default="balanced", metavar="{precision,balanced,recall,TARGET}",
                   help="for --audit/--suspects (default balanced)")
    p.add_argument("--image-root", default="", help="folder the collection's image paths are relative to (default: "
                   "the folder it was ingested from, then ATLAS_IMAGE_ROOT)")
    p.add_argument("--mode", default="symlink", choices=["symlink", "copy"], help="imagefolder: links or copies")
    p.add_argument("--overwrite", action="store_true", help="write into a folder that is not empty")
    p.add_argument("--document-root-path", default="", help="labelstudio: the image folder's path under Label "
                   "Studio's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT (for images without a URL)")
    p.add_argument("--label-field", default="label")
    p.set_defaults(fn=cmd_export)

    p = sub.add_parser("import-labelstudio", parents=[common], help="apply a reviewed Label Studio export (JSON or "
                       "JSON-MIN) as relabels, with the annotator in the label history")
    p.add_argument("export", help="the JSON file exported from Label Studio")
    p.add_argument("--collection", required=True)
    p.add_argument("--new-labels", action="store_true", help="accept labels that no point has yet")
    p.add_argument("--label-field", default="label")
    p.set_defaults(fn=cmd_import_labelstudio)

    p = sub.add_parser("review", parents=[common], help="review suspected label errors one by one; every decision "
                       "re-ranks the rest")
    p.add_argument("--collection", required=True)
    p.add_argument("--operating-point", default="balanced", metavar="{precision,balanced,recall,TARGET}",
                   help="which suspects to review (as for audit; default balanced)")
    p.add_argument("--k", type=int, default=10, help="neighbours per point (default 10)")
    p.add_argument("--limit", type=int, default=0, help="stop after this many suspects (default: all)")
    p.add_argument("--rerank-every", type=int, default=0,
                   help=f"re-rank after this many decisions (default: 1, or 10 above {REVIEW_RERANK_POINTS:,} points)")
    p.add_argument("--by", default="", help="name recorded with each decision (default: ATLAS_USER or the login)")
    p.add_argument("--decisions", default="", metavar="FILE.csv",
                   help="no questions: apply the decisions in this CSV (columns id, decision = accept, keep, "
                   "relabel or skip, and label for relabel), then re-rank once")
    p.add_argument("--label-field", default="label")
    p.set_defaults(fn=cmd_review)

    p = sub.add_parser("relabel", parents=[common], help="change one point's label (history is kept)")
    p.add_argument("--collection", required=True)
    p.add_argument("--point", required=True, help="point id")
    p.add_argument("--label", required=True, help="the new label")
    p.add_argument("--new-label", action="store_true", help="allow a label that no point has yet")
    p.add_argument("--label-field", default="label")
    p.set_defaults(fn=cmd_relabel)

    p = sub.add_parser("search", parents=[common], help="similar images by image, text or point")
    p.add_argument("--collection", required=True)
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--image", help="query image file")
    q.add_argument("--text", help="text query (models with a text encoder: clip-vit-b-32)")
    q.add_argument("--point", help="id of a point in the collection: more like this")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--label", action="append", help="only results with this label (repeatable)")
    p.add_argument("--label-field", default="label")
    p.add_argument("--vector", default="", help="vector name, for collections with several")
    p.add_argument("--hnsw-ef", type=int, default=None, help="HNSW search breadth (higher: more exact, slower)")
    p.add_argument("--exact", action="store_true", help="exact (brute-force) search")
    p.add_argument("--min-score", type=float, default=None, help="drop results below this cosine similarity")
    p.set_defaults(fn=cmd_search)

    p = sub.add_parser("collections", parents=[common], help="list collections: points, model, vectors, labels")
    p.add_argument("--label-field", default="label", help="payload field that holds the label")
    p.set_defaults(fn=cmd_collections)

    p = sub.add_parser("warmup", help="compile the map code (UMAP, NN-descent) ahead, so the first map is fast")
    p.add_argument("--force", action="store_true", help="compile again even when already done")
    p.add_argument("--quiet", action="store_true", help="print only when it compiled something")
    p.set_defaults(fn=cmd_warmup)

    p = sub.add_parser("hash-password", help="hash a password for a built-in user of the app (secrets.toml)")
    p.add_argument("--user", default="", help="print a whole [atlas_users.<user>] table to paste into "
                   ".streamlit/secrets.toml, not only the hash")
    p.add_argument("--role", default="viewer", choices=("viewer", "editor", "admin"),
                   help="role for --user (default: viewer)")
    p.add_argument("--stdin", action="store_true", help="read the password from standard input (no prompt)")
    p.set_defaults(fn=cmd_hash_password)
    return parser


class UsageError(ValueError):
    """An argument out of its range; the message names the flag and a value that works."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise UsageError(message)


def _finite(x: float | None, lo: float, hi: float) -> bool:
    return x is not None and math.isfinite(x) and lo <= x <= hi


def check_args(args: argparse.Namespace) -> None:
    """Range checks argparse cannot express, run before any store or model opens (exit 1, not a traceback)."""
    from .search import MAX_K

    cmd = args.command
    if cmd == "search":
        _require(1 <= args.k <= MAX_K, f"--k must be a whole number from 1 to {MAX_K:,} (how many results), "
                                       "e.g. --k 10.")
        _require(args.hnsw_ef is None or 1 <= args.hnsw_ef <= 100_000,
                 "--hnsw-ef must be from 1 to 100000 (e.g. --hnsw-ef 128); leave it out for the engine's default.")
        _require(args.min_score is None or _finite(args.min_score, -1.0, 1.0),
                 "--min-score is a cosine similarity from -1 to 1, e.g. --min-score 0.5.")
        _require(args.text is None or bool(args.text.strip()),
                 "--text is empty: describe the images you want, e.g. --text 'a red apple'.")
    if cmd in ("search", "relabel") and args.point is not None:
        from .store import parse_point_id

        try:
            args.point = parse_point_id(args.point)
        except ValueError as exc:
            raise UsageError(f"--point: {exc}") from None
    if cmd == "audit":
        from .audit import CHECKS

        _require(args.threshold is None or _finite(args.threshold, 0.0, 1.0),
                 "--threshold is a probability from 0 to 1 (flag labels less likely than this), e.g. --threshold 0.05; "
                 "leave it out to follow --operating-point.")
        _require(args.duplicate_similarity is None or _finite(args.duplicate_similarity, -1.0, 1.0),
                 "--duplicate-similarity is a cosine from -1 to 1, e.g. --duplicate-similarity 0.98; leave it out "
                 "for the adaptive rule.")
        checks = [c.strip() for c in args.checks.split(",") if c.strip()]
        unknown = [c for c in checks if c not in CHECKS]
        _require(bool(checks) and not unknown, f"--checks takes a comma-separated list of {', '.join(CHECKS)}"
                 + (f"; unknown: {', '.join(unknown)}" if unknown else "; it is empty") + ".")
    if cmd == "export" and (args.audit or args.suspects):
        from .audit.calibration import check_operating_point

        try:
            args.operating_point = check_operating_point(args.operating_point)
        except ValueError as exc:
            raise UsageError(f"--operating-point: {exc}") from None
    if cmd in ("audit", "review"):
        from .audit.calibration import check_operating_point

        _require(1 <= args.k <= 1000, "--k must be a whole number from 1 to 1000 (neighbours per point), e.g. --k 10.")
        try:
            args.operating_point = check_operating_point(args.operating_point)
        except ValueError as exc:
            raise UsageError(f"--operating-point: {exc}") from None
    if cmd == "review":
        _require(args.limit >= 0, "--limit must be 0 (every suspect) or more, e.g. --limit 50.")
        _require(args.rerank_every >= 0, "--rerank-every must be 0 (automatic) or more, e.g. --rerank-every 5.")
    if cmd == "project":
        _require(args.max_points >= 0, "--max-points must be 0 (the ATLAS_MAP_MAX_POINTS default) or more.")
        _require(args.n_neighbors is None or 2 <= args.n_neighbors <= 200, "--n-neighbors must be from 2 to 200.")
        _require(args.min_dist is None or _finite(args.min_dist, 0.0, 10.0), "--min-dist must be from 0 to 10.")
        _require(args.perplexity is None or _finite(args.perplexity, 1.0, 1000.0),
                 "--perplexity must be from 1 to 1000.")
        _require(args.seed is None or 0 <= args.seed < 2**32, "--seed must be from 0 to 4294967295.")
    if cmd == "ingest":
        _require(args.batch_size >= 0, "--batch-size must be 0 (the ATLAS_BATCH_SIZE default) or more.")
    if cmd == "demo":
        _require(args.per_class >= 1, "--per-class must be at least 1 image per class, e.g. --per-class 200.")


def main(argv: Sequence[str] | None = None) -> int:
    from .formats.export import ExportError
    from .ingest import IngestError
    from .labels import LabelError
    from .models import ModelError
    from .search import SearchError
    from .store import StoreError

    args = build_parser().parse_args(argv)
    try:
        check_args(args)
        return args.fn(args)
    except (IngestError, ExportError, LabelError, ModelError, SearchError, StoreError, ValueError, LookupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: points written so far are kept; run the same command again to continue.",
              file=sys.stderr)
        return 130
