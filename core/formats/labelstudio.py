"""Label Studio: tasks to review in a labelling tool, and the reviewed export back as relabels.

Out: a tasks JSON in Label Studio's basic format (a list of tasks, each with a `data` object and a `predictions`
list; https://labelstud.io/guide/predictions and /guide/task_format): one task per image, `data.image` the image's
URL, `data.atlas_id` its point id, and the audit's suggested label as a prediction (a `choices` result of the
`choice` control on the `image` object) whose `score` is the suggestion's confidence. The labeling configuration
that matches (an Image and a single-choice Choices over the collection's labels) is written beside it (.xml).

In: Label Studio's JSON export (or JSON-MIN) of those tasks: each task's latest annotation that was not cancelled
becomes a relabel (a different label) or a confirmation (the same label), recorded in the point's label history
with `by` = the annotator, through core.labels, so history, undo and the integrity rules hold.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

from ..catalog import is_unknown, unknown_labels
from ..ingest import Skipped
from ..labels import Change, LabelError, check_label, confirm, new_batch, relabel_each
from ..store import InvalidPointId, PointId, Store, parse_point_id
from .export import ExportError, ExportReport, Selection, _selected, records

CONTROL = "choice"  # the Choices control's name (from_name)
OBJECT = "image"  # the Image object's name (to_name) and the task data key it reads ($image)
MODEL_VERSION = "image-atlas-audit"


def labeling_config(labels: Sequence[Any]) -> str:
    """The Label Studio labeling configuration the tasks are made for: the image and one choice per label."""
    choices = "\n".join(f"    <Choice value={quoteattr(str(label))}/>" for label in labels)
    return (f'<View>\n  <Image name="{OBJECT}" value="${OBJECT}"/>\n'
            f'  <Choices name="{CONTROL}" toName="{OBJECT}" choice="single" showInLine="true">\n{choices}\n'
            "  </Choices>\n</View>\n")


def image_reference(row: dict[str, Any], document_root_path: str | None) -> str | None:
    """What Label Studio loads: the image's URL, else a local-files URL (its `path` under the folder served as
    LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT, given as document_root_path relative to that root)."""
    if row.get("image_url"):
        return str(row["image_url"])
    if row.get("path") is None:
        return None
    rel = f"{document_root_path.strip('/')}/{row['path']}" if document_root_path else str(row["path"])
    return f"/data/local-files/?d={quote(rel)}"


def labelstudio_tasks(sel: Selection, document_root_path: str | None = None,
                      labels: Sequence[Any] | None = None) -> tuple[list[dict[str, Any]], str, list[Skipped]]:
    """(tasks, labeling configuration XML, points left out) for the selection: what export_labelstudio writes, for
    a page's download button (json.dumps(tasks))."""
    unknown = unknown_labels()
    tasks = []
    skipped: list[Skipped] = []
    seen_labels: dict[str, None] = {}
    for row in records(sel):
        image = image_reference(row, document_root_path)
        if image is None:
            skipped.append(Skipped(row["id"], "no image path or URL in the payload"))
            continue
        label = None if is_unknown(row["label"], unknown) else row["label"]
        if label is not None:
            seen_labels.setdefault(str(label))
        data = {OBJECT: image, "atlas_id": row["id"], "atlas_collection": sel.collection,
                "atlas_label": None if label is None else str(label), "file_name": row.get("file_name"),
                "path": row.get("path")}
        for key in ("label_score", "suggestion_confidence", "is_label_issue"):
            if row.get(key) is not None:
                data[f"atlas_{key}"] = row[key]
        task: dict[str, Any] = {"data": data}
        suggested = row.get("suggested_label")
        if suggested is not None:
            seen_labels.setdefault(str(suggested))
            score = row.get("suggestion_confidence")
            task["predictions"] = [{
                "model_version": MODEL_VERSION,
                **({"score": float(score)} if score is not None else {}),
                "result": [{"id": uuid.uuid4().hex[:10], "from_name": CONTROL, "to_name": OBJECT, "type": "choices",
                            "value": {"choices": [str(suggested)]}}]}]
        tasks.append(task)
    choices = [str(v) for v in labels] if labels is not None else sorted(seen_labels)
    return tasks, labeling_config(choices), skipped


def export_labelstudio(sel: Selection, out: str | Path, document_root_path: str | None = None,
                       labels: Sequence[Any] | None = None) -> ExportReport:
    """Tasks JSON (one task per selected image) and its labeling configuration (`out` with .xml). `labels`: the
    choices offered (default: every label among the points and suggestions)."""
    out = Path(out).expanduser().resolve()
    if out.suffix.lower() != ".json":
        raise ExportError(f"Label Studio tasks are written as .json, not '{out.suffix or out.name}'.")
    report = ExportReport("labelstudio", sel.collection, str(out))
    _selected(sel, report)
    tasks, config_xml, skipped = labelstudio_tasks(sel, document_root_path, labels)
    report.skipped.extend(skipped)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(tasks, indent=1, ensure_ascii=False), encoding="utf-8")
    config = out.with_suffix(".xml")
    config.write_text(config_xml, encoding="utf-8")
    report.exported = len(tasks)
    report.notes.append(f"Labeling configuration for the project: {config} (paste it under Settings > Labeling "
                        "Interface).")
    if any(t["data"][OBJECT].startswith("/data/local-files/") for t in tasks):
        report.notes.append("Images are referenced as Label Studio local files: start Label Studio with "
                            "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT "
                            f"= {sel.image_root or 'the image folder'}, and add a Local Files storage there (or ingest "
                            "with --base-url so that tasks carry image URLs).")
    return report


@dataclass
class Decision:
    id: PointId
    label: Any
    by: str
    task: Any = None


NOT_ANNOTATED = "not annotated (or every annotation was cancelled)"


@dataclass
class LabelStudioImport:
    """What a reviewed export changed: relabels and confirmations (Changes, one undo batch), and the tasks left out."""
    relabelled: int = 0
    confirmed: int = 0
    unchanged: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    batch: str = ""

    @property
    def not_reviewed(self) -> int:
        """Tasks nobody annotated yet: the normal case of a partial review, not a problem."""
        return sum(s.reason == NOT_ANNOTATED for s in self.skipped)

    @property
    def problems(self) -> list[Skipped]:
        """Tasks left out for a reason worth reading (not Image Atlas's, a point gone, a label refused, ...)."""
        return [s for s in self.skipped if s.reason != NOT_ANNOTATED]

    def as_dict(self) -> dict[str, Any]:
        return {"relabelled": self.relabelled, "confirmed": self.confirmed, "unchanged": self.unchanged,
                "not_reviewed": self.not_reviewed,
                "skipped": len(self.skipped), "skipped_tasks": [{"task": s.path, "reason": s.reason}
                                                                for s in self.skipped], "batch": self.batch}


def _annotator(value: Any, default: str) -> str:
    if isinstance(value, dict):
        name = value.get("email") or value.get("username") or " ".join(
            str(value.get(k, "")) for k in ("first_name", "last_name")).strip()
        if name:
            return str(name)
        value = value.get("id")
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return f"label-studio user {value}"
    return default


def read_decisions(export: str | Path | bytes | list, default_by: str = "label-studio"
                   ) -> tuple[list[Decision], list[Skipped]]:
    """Each task's decision: its latest annotation that was not cancelled, with its first choice and annotator.
    Reads Label Studio's JSON export (tasks with `annotations`) and JSON-MIN (flat rows with the control's name);
    `export` is the file's path, its bytes (an upload) or the parsed list."""
    path = "the upload" if isinstance(export, (bytes, list)) else Path(export).expanduser()
    try:
        if isinstance(export, list):
            tasks = export
        else:
            tasks = json.loads(export.decode("utf-8") if isinstance(export, bytes)
                               else path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LabelError(f"Cannot read the Label Studio export {path}: {exc}. Export the project as JSON (or "
                         "JSON-MIN) in Label Studio and give that file.") from None
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise LabelError(f"{path} is not a Label Studio export: it should hold a list of tasks.")
    decisions, skipped = [], []
    for n, task in enumerate(tasks, start=1):
        if not isinstance(task, dict):
            skipped.append(Skipped(f"task {n}", "not a task object"))
            continue
        where = f"task {task.get('id', n)}"
        data = task.get("data") if isinstance(task.get("data"), dict) else task
        raw_id = data.get("atlas_id")
        if raw_id is None:
            skipped.append(Skipped(where, "no atlas_id in its data: not a task exported by Image Atlas"))
            continue
        try:
            pid = parse_point_id(raw_id)
        except InvalidPointId as exc:
            skipped.append(Skipped(where, str(exc)))
            continue
        if "data" in task:  # the full JSON export
            annotations = [a for a in task.get("annotations") or []
                           if isinstance(a, dict) and not a.get("was_cancelled")]
            if not annotations:
                skipped.append(Skipped(where, NOT_ANNOTATED))
                continue
            latest = max(enumerate(annotations), key=lambda ia: (str(ia[1].get("updated_at")
                                                                     or ia[1].get("created_at") or ""), ia[0]))[1]
            choices = [c for r in latest.get("result") or [] if isinstance(r, dict) and r.get("type") == "choices"
                       and r.get("from_name", CONTROL) == CONTROL for c in (r.get("value") or {}).get("choices") or []]
            by = _annotator(latest.get("completed_by"), default_by)
        else:  # JSON-MIN: the control's name holds the choice (a list for several)
            value = task.get(CONTROL)
            choices = value if isinstance(value, list) else ([value] if value is not None else [])
            if isinstance(choices, list) and choices and isinstance(choices[0], dict):
                choices = choices[0].get("choices") or []
            by = _annotator(task.get("annotator"), default_by)
        if not choices:
            skipped.append(Skipped(where, f"its annotation chose no label (control '{CONTROL}')"))
            continue
        decisions.append(Decision(pid, choices[0], by, where))
    return decisions, skipped


def import_labelstudio(store: Store, collection: str, export: str | Path | bytes | list, label_field: str = "label",
                       allow_new_labels: bool = False, default_by: str = "label-studio") -> LabelStudioImport:
    """Apply a reviewed Label Studio export: a chosen label that differs from the point's label is a relabel, the
    same label a confirmation (trusted by the audit), each recorded with `by` = the annotator, all in one batch (one
    undo step). Every task is checked before anything is written; the ones that cannot be applied (a point that is
    gone, a blank label, a label no point has unless allow_new_labels) are left out and listed with the reason."""
    decisions, skipped = read_decisions(export, default_by)
    result = LabelStudioImport(skipped=skipped, batch=new_batch())
    if not store.collection_exists(collection):
        raise LabelError(f"There is no collection '{collection}' to apply the review to.")
    stored = {str(k): k for k in store.count_by(collection, label_field)}
    current = store.retrieve(collection, [d.id for d in decisions])
    labels = {pid: p.get(label_field) for pid, p in zip(current.ids, current.payloads)}
    relabels: dict[str, dict[PointId, Any]] = {}
    confirms: dict[str, list[PointId]] = {}
    for d in decisions:
        if d.id not in labels:
            result.skipped.append(Skipped(d.task, f"point {d.id} is not in '{collection}' (deleted?)"))
            continue
        try:
            new = check_label(d.label.strip() if isinstance(d.label, str) else d.label)
        except LabelError as exc:
            result.skipped.append(Skipped(d.task, str(exc)))
            continue
        if str(new) not in stored and not allow_new_labels:
            result.skipped.append(Skipped(d.task, f"no point has the label '{new}' yet: check the spelling, or allow "
                                                  "new labels (--new-labels)"))
            continue
        new = stored.get(str(new), new)  # as stored (a number stays a number)
        if str(labels[d.id]) == str(new):
            confirms.setdefault(d.by, []).append(d.id)
        else:
            relabels.setdefault(d.by, {})[d.id] = new
    try:
        for by, ids in confirms.items():
            changes = confirm(store, collection, ids, by, label_field, batch=result.batch)
            result.confirmed += len(changes)
            result.unchanged += len(ids) - len(changes)  # already confirmed with that label
            result.changes.extend(changes)
        for by, new_labels in relabels.items():
            changes = relabel_each(store, collection, new_labels, by, label_field, batch=result.batch)
            result.relabelled += len(changes)
            result.changes.extend(changes)
    except Exception as exc:
        if not result.changes:
            raise
        raise LabelError(f"Applying the review stopped after {len(result.changes):,} changes (batch {result.batch}, "
                         f"in each point's label history): {exc}. Run the same import again to apply the rest (the "
                         "changes already written are skipped).") from exc
    return result
