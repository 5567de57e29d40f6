import pandas as pd
import streamlit as st

from core import auth as auth_rules
from core import labels as label_ops
from core.catalog import payload_text
from core.exporting import to_csv
from core.figures import plotly_text
from ui.audit import (ADAPTIVE, AUTO_RERANK_MAX_POINTS, FIXED_COSINE, OPERATING_POINTS, act, audit_now,
                      calibration_figure, calibration_table, collect_rerank, confusion_figure, current_request,
                      default_min_confidence, delete_button, duplicate_caption, figure_of, handled_ids, keep,
                      open_issues, prefetch, relabel_chosen, request_audit, rerank, rerank_progress, reranking,
                      show_message, undo_last, version)
from ui.auth import can, mode
from ui.common import require_collection, thumb
from ui.export import export_panel
from ui.text import clip, md_escape, plural

# Cards per page: each is a dozen elements (images, buttons, a label picker), and the browser's redraw after a click
# grows with their number (20 cards, label issues and outliers, took 1-2 s to redraw on a busy 2-core machine).
PER_PAGE = 5

st.title("Audit")
ctx = require_collection("audit")
s = ctx.summary
# Buttons are drawn only for those who may press them; the callbacks in ui/audit.py check again.
editor, admin = can("edit"), can("admin")
if not editor:
    st.info("Read-only deployment: the report is shown, but labels cannot be changed here."
            if mode() == auth_rules.READ_ONLY else
            "You are logged in as a viewer, so the report is read-only: changing labels needs the editor role, "
            "deleting points the admin role.")
elif not admin:
    st.caption("Deleting points needs the admin role.")

c1, c2 = st.columns([3, 1])
c1.multiselect("Checks", ["label", "outlier", "duplicate"], ["label", "outlier", "duplicate"],
               key="audit_checks")
c2.slider("Neighbours (k)", 2, 50, 10, key="audit_k")
choice = st.radio("Flag label issues", list(OPERATING_POINTS), index=1, horizontal=True, key="audit_operating_point",
                  help="The audit plants a few label flips of its own (in memory, never written) to "
                  "learn how wrong labels score on this collection, and chooses the threshold from them. " +
                  " ".join(f"**{name}**: {text}" for name, (_, text) in OPERATING_POINTS.items()))
# read by the Run audit callback from the session (ui.audit.request_audit), as are the other controls
if choice == "Target precision":
    st.columns([2, 3])[0].slider("Target precision", 0.5, 0.99, 0.9, 0.01, key="audit_target_precision",
                                 help="Flag as many labels as keep the expected share of real errors among them "
                                      "this high.")
elif choice == "Fixed threshold":
    st.columns([2, 3])[0].slider("Flag labels below probability", 0.01, 0.5, 0.05, key="audit_threshold",
                                 help="A label is flagged when a classifier that never saw the point gives it less "
                                      "than this probability. Uncalibrated: no estimate of how many flags are real "
                                      "errors.")
d1, d2 = st.columns([3, 2])
duplicate_rule = d1.radio("Near-duplicates", [ADAPTIVE, FIXED_COSINE], horizontal=True, key="audit_duplicate_rule",
                          help="Adaptive: a pair counts when the two images are much closer to each other than to "
                               "their usual neighbours, judged against this collection's own spread (what a cosine "
                               "means differs between models and datasets). Fixed: one cosine for every pair.")
if duplicate_rule == FIXED_COSINE:
    d2.slider("Near-duplicate similarity", 0.9, 1.0, 0.98, 0.005, key="audit_similarity")
st.button("Run audit", type="primary", key="audit_run", on_click=request_audit, args=(s.name, ctx.label_field))
req = st.session_state.get("audit_request")
if not req or req["collection"] != s.name:
    # started now, so that the click usually finds it done (small collections only)
    prefetch(ctx.store, current_request(s.name, ctx.label_field), s.points)
    st.info("Press **Run audit**. It reads every point's vector, builds the shared kNN graph and scores each check.")
    st.stop()
# The report stays in the session. Run audit computes it (from memory when the labels have not changed); a decision
# re-ranks it in the background (ui.audit.start_rerank) while the lists drop the decided points at once.
held = st.session_state.get("audit_report")
if st.session_state.pop("audit_force", False) or held is None or held[0] != req:
    held = (dict(req), audit_now(ctx.store, req))
    st.session_state["audit_report"] = held


# Everything below is one fragment: an action (accept, keep, relabel, delete, undo), a selection, a filter or a tab
# redraws the report only, not the sidebar and the controls above; writes take milliseconds, re-ranking is off the
# click's path.
@st.fragment
def report_view() -> None:
    collect_rerank(ctx.store)  # a finished re-rank replaces the report before anything is drawn from it
    report = st.session_state["audit_report"][1]
    for note in report.notes:
        st.info(md_escape(note))
    table = report.table
    done = handled_ids()
    field = report.label_field or "label"
    show_message()
    st.session_state["audit_suspects"] = {"collection": s.name, "ids": list(report.suspects("label")["id"])}

    if reranking():
        rerank_progress()  # polls once a second while a re-rank runs; swaps the new ranking in when ready

    cols = st.columns(5)
    label_summary = report.results["label"].summary if "label" in report.results else {}
    cols[0].metric("Points", f"{len(table):,}")
    # counts of what is left to review: decisions of this session leave at once, before the re-rank lands
    cols[1].metric("Label issues", f"{len(open_issues(report, 'label', done)):,}" if "label" in report.results
                   else "0")
    cols[2].metric("Outliers", f"{len(open_issues(report, 'outlier', done)):,}" if "outlier" in report.results
                   else "–")
    cols[3].metric("Duplicate groups", f"{report.results['duplicate'].summary['groups']:,}"
                   if "duplicate" in report.results else "–")
    unlabeled = table["label"].isna() & ~table["id"].isin(done)
    cols[4].metric("Unlabeled", f"{int(unlabeled.sum()):,}")
    if label_summary.get("note"):
        st.warning(md_escape(label_summary["note"]))

    known_labels = sorted({str(v) for v in table["label"].dropna()})
    # The table holds labels as text; a change writes the label as the collection stores it (3, not "3").
    stored = {str(p.get(field)): p.get(field) for p in report.points.payloads if p.get(field) is not None}


    def typed(label: str):
        return stored.get(label, label)


    def show_point(row: pd.Series, key: str, kind: str) -> None:
        """A suspect beside its nearest neighbours, with the actions that fit the check (`kind`: label, outlier).
        Every action is a button whose callback writes once."""
        r = int(row.name)
        pid, label = row["id"], row["label"]
        left, right = st.columns([1, 4])
        with left:
            st.image(thumb(report.points.payloads[r], ctx, 128), width=128)
            st.text(f"given: {payload_text(label, 40)}\n{payload_text(row.get('file_name') or '', 40)}")
            if kind == "label" and pd.notna(row.get("label_score")):
                st.text(f"label score {row['label_score']:.3f}\nsuggested: {payload_text(row['suggested_label'], 30)}")
            if kind == "outlier" and pd.notna(row.get("outlier_score")):
                st.text(f"outlier score {row['outlier_score']:.3f}\ndistance {row['outlier_distance']:.3f}")
        with right:
            # one element for the six neighbours (a row of columns with an image and a text each was 18): a page
            # shows 20 cards, and the browser's time grows with the element count. Captions are Markdown: escaped.
            neighbours = report.knn.indices[r][:6]
            if len(neighbours):
                st.image([thumb(report.points.payloads[n], ctx, 96) for n in neighbours], width=96,
                         caption=[md_escape(f"{payload_text(table.at[n, 'label'], 20)} · sim {sim:.2f}")
                                  for n, sim in zip(neighbours, report.knn.similarities[r])])
            if not editor:
                return
            a1, a2, a3, a4 = st.columns(4)
            suggested = row.get("suggested_label")
            if kind == "label":
                if suggested is not None and pd.notna(suggested) and suggested != label:
                    a1.button(f"Accept '{md_escape(clip(suggested, 20))}'", key=f"{key}_accept", on_click=act,
                              args=(label_ops.relabel, ctx.store, s.name, [pid], field, typed(suggested)),
                              help="Set the suggested label. The audit then trusts it and re-ranks the rest.")
                a2.button("Mark correct", key=f"{key}_confirm", on_click=act,
                          args=(label_ops.confirm, ctx.store, s.name, [pid], field),
                          help="The given label is right: the audit trusts it, never flags it again, and re-ranks the "
                               "rest with it.")
            else:
                a1.button("Keep", key=f"{key}_keep", on_click=keep, args=(ctx.store, s.name, pid, field),
                          help="The image belongs here: drop it from this list (its label is marked correct).")
                if admin:
                    with a2:
                        delete_button(f"{key}_delete", ctx.store, s.name, pid, field)
            others = [typed(lab) for lab in known_labels if lab != label]
            choice = a3.selectbox("Other label", others, index=None, placeholder="Other label…", key=f"{key}_other",
                                  format_func=str, label_visibility="collapsed")
            a4.button("Relabel", key=f"{key}_relabel", disabled=choice is None, on_click=relabel_chosen,
                      args=(ctx.store, s.name, pid, field, f"{key}_other"))


    # The server keeps the open tab (on_change="rerun"): after an action the page is drawn again with the same tab
    # open, whatever appeared above the tabs meanwhile (a message, the re-rank's status box).
    tabs = st.tabs(["Label issues", "Class confusion", "Outliers", "Near-duplicates", "Unlabeled", "Changes"],
                   key="audit_tabs", on_change="rerun")

    with tabs[0]:
        if "label" not in report.results:
            st.info("The label check was not run.")
        else:
            calibration = label_summary.get("calibration")
            if calibration:  # how far to trust the flags, estimated on this collection
                st.info(md_escape(calibration["sentence"]))
                with st.expander("How this is estimated: per class, and against the threshold"):
                    point = calibration["operating_point"]
                    point = point if not point[:1].isdigit() else f"target precision {float(point):.0%}"
                    st.caption(md_escape(
                        f"Operating point: {point}; "
                        f"labels scoring below {calibration['threshold']:.3f} are flagged. About "
                        f"{calibration['error_rate']:.1%} of this collection's labels are estimated wrong "
                        f"({calibration['error_rate_interval'][0]:.1%}–{calibration['error_rate_interval'][1]:.1%}). "
                        f"The audit planted {calibration['planted']:,} label flips in memory (never written), towards "
                        "the classes the data confuses and at random, and measured how they score; intervals are 90%."))
                    per_class = calibration_table(calibration)
                    if len(per_class):
                        st.dataframe(per_class, hide_index=True, key="audit_per_class",
                                     column_config={c: st.column_config.NumberColumn(format="percent") for c in (
                                         "expected precision", "expected recall", "estimated wrong labels")})
                    else:
                        st.caption("Too few planted flips per class for per-class figures.")
                    curve = report.results["label"].extra.get("calibration")
                    if curve is not None and curve.curve:
                        st.plotly_chart(figure_of(curve, lambda: calibration_figure(curve.curve,
                                                                                    calibration["threshold"])),
                                        key="audit_calibration_curve")
            elif label_summary.get("threshold") is not None and label_summary.get("operating_point") is None:
                st.caption(f"Fixed threshold: labels scoring below {label_summary['threshold']:.3f} are flagged, "
                           "uncalibrated. Choose an operating point to see how many flags are expected to be real "
                           "errors.")
            trusted = int(label_summary.get("trusted", 0) or 0)
            st.caption((f"Re-ranked using {trusted:,} of your decisions. " if trusted else "")
                       + "Every decision teaches the audit: a label you accept, set or mark correct is trusted, never "
                         "flagged again, and weighs more when the audit refits and re-ranks the rest.")
            st.toggle("Re-rank after each decision", value=len(table) <= AUTO_RERANK_MAX_POINTS,
                      key="audit_auto_rerank",
                      help="Re-run the audit in the background after every change; the new ranking replaces the "
                           "list when ready (decided points leave it at once). Off: re-rank when you are ready "
                           "(button on the Changes tab).")
            suspects = open_issues(report, "label", done)
            f1, f2 = st.columns(2)
            given = f1.multiselect("Given label", known_labels, key="audit_given")
            suggested = f2.multiselect("Suggested label", known_labels, key="audit_suggested")
            if given:
                suspects = suspects[suspects["label"].isin(given)]
            if suggested:
                suspects = suspects[suspects["suggested_label"].isin(suggested)]
            st.caption(f"{plural(len(suspects), 'suspect')}, most likely wrong first. Fixed in this session: "
                       f"{len(done):,}.")
            view = suspects[["id", "label", "suggested_label", "label_score", "suggestion_confidence",
                             "neighbour_agreement", "file_name"]]
            # keyed by the action count: a selection is of row positions, which shift once changed points drop out
            picked = st.dataframe(view, hide_index=True, width="stretch", on_select="rerun",
                                  selection_mode="multi-row", key=f"audit_table_{version()}")
            rows = view.iloc[picked.selection.rows] if picked and picked.selection.rows else view.iloc[0:0]
            if len(rows) and editor:
                ids = list(rows["id"])
                accept = {pid: typed(new) for pid, new, old in zip(rows["id"], rows["suggested_label"], rows["label"])
                          if new is not None and pd.notna(new) and new != old}
                b1, b2, b3, b4 = st.columns(4)
                b1.button(f"Accept {plural(len(accept), 'suggestion')}", key="audit_bulk_accept", disabled=not accept,
                          on_click=act, args=(label_ops.relabel_each, ctx.store, s.name, accept, field),
                          help="One step: a single undo reverts them all.")
                b2.button(f"Mark {len(ids)} correct", key="audit_bulk_confirm", on_click=act,
                          args=(label_ops.confirm, ctx.store, s.name, ids, field))
                target = b3.text_input("Set selected to label", key="audit_bulk_label").strip()
                new_label = bool(target) and target not in known_labels
                create = new_label and b3.checkbox("This is a new label: create it", key="audit_bulk_new")
                b4.button(f"Set label of {plural(len(ids), 'point')}", key="audit_bulk_set",
                          disabled=not target or (new_label and not create), on_click=act,
                          args=(label_ops.relabel, ctx.store, s.name, ids, field, typed(target)))
            st.download_button("Export suspects (CSV)", to_csv(suspects), f"{s.name}-suspects.csv",
                               "text/csv", key="audit_export")
            pages = max(1, -(-len(suspects) // PER_PAGE))
            page = st.number_input(f"Page (of {pages})", 1, pages, 1, key="audit_page") if pages > 1 else 1
            for _, row in suspects.iloc[(page - 1) * PER_PAGE: page * PER_PAGE].iterrows():
                st.divider()
                show_point(row, f"audit_pt_{row.name}", "label")

    with tabs[1]:
        if "label" in report.results and not report.results["label"].extra.get("confusion", pd.DataFrame()).empty:
            extra = report.results["label"].extra
            # labels become axis ticks, where Plotly renders HTML: escape them as Plotly text
            st.caption("Flagged points by given label (rows) and suggested label (columns): a full cell is a pair of "
                       "classes the data confuses. Empty cells have no suspects.")
            st.plotly_chart(figure_of(report.results["label"], lambda: confusion_figure(
                extra["confusion"].rename(index=plotly_text, columns=plotly_text))),
                            key="audit_confusion", width="stretch")
            st.caption("label_quality: the mean label score of each class's labeled points, i.e. the average "
                       "probability that a classifier which never saw a point gives it its own label (0 to 1). "
                       "Low: the class is often confused with others or holds wrong labels; review it first.")
            st.dataframe(extra["label_quality"].sort_values().reset_index(), hide_index=True, key="audit_quality",
                         column_config={"label_quality": st.column_config.ProgressColumn(
                             "label_quality", min_value=0.0, max_value=1.0, format="%.3f")})
        else:
            st.info("No label issues, so no confusion between labels.")

    with tabs[2]:
        if "outlier" not in report.results:
            st.info("The outlier check was not run.")
        else:
            summary = report.results["outlier"].summary
            outliers = open_issues(report, "outlier", done)
            if "distance_limit" in summary:
                st.caption(f"{plural(len(outliers), 'point')} farther from their neighbours than "
                           f"{summary['distance_limit']:.3f} (median + 3 MAD), most isolated first.")
            else:  # too few points to judge
                st.info(f"No outliers: {summary.get('note', 'too few points to judge')}.")
            if len(outliers):
                st.dataframe(outliers[["id", "label", "outlier_score", "outlier_distance", "file_name"]],
                             hide_index=True)
            for _, row in outliers.head(PER_PAGE).iterrows():
                st.divider()
                show_point(row, f"audit_out_{row.name}", "outlier")

    with tabs[3]:
        if "duplicate" in report.results:
            groups = report.results["duplicate"].extra["groups"]
            st.caption(duplicate_caption(report.results["duplicate"].summary))
            for g, members in enumerate(groups[:30]):
                members = [m for m in members if table.at[m, "id"] not in done]
                if len(members) < 2:
                    continue
                names = sorted({payload_text(table.at[m, "label"], 20) for m in members})
                st.text(f"group {g + 1}: " + ", ".join(names))
                gcols = st.columns(min(8, len(members)))
                for j, m in enumerate(members[:8]):
                    with gcols[j]:
                        st.image(thumb(report.points.payloads[m], ctx, 96), width=96)
                        st.text(f"{payload_text(table.at[m, 'label'], 20)}\n"
                                f"{payload_text(table.at[m, 'file_name'] or '', 24)}\n"
                                f"{'exact copy' if table.at[m, 'exact_copy'] else ''}")
                        if admin:
                            delete_button(f"audit_del_{g}_{m}", ctx.store, s.name, table.at[m, "id"], field)

    with tabs[4]:
        if "label" in report.results:
            without = table[table["label"].isna() & ~table["id"].isin(done)]
            unl = without[without["suggested_label"].notna()]
            unl = unl.sort_values("suggestion_confidence", ascending=False)
            if len(without) and unl.empty:
                # suggestions are learnt from the labeled points: a collection of unlabeled images alone has none
                st.info(f"{plural(len(without), 'point')} without a label, but no suggestion: the audit learns "
                        "suggestions from the labeled points of this collection, and it has too few. Ingest some "
                        "labeled images into it (one folder per label, or a manifest with a label column), then "
                        "run the audit again.")
            else:
                st.caption(f"{plural(len(unl), 'point')} without a label (or with a label that means none, such as "
                           "'unlabeled') get a suggestion from the labeled ones, most confident first.")
            if len(unl) and editor:
                # keyed by collection and report: the starting value follows this audit's suggestions
                lowest = default_min_confidence(unl["suggestion_confidence"])
                min_conf = st.slider("Accept suggestions with confidence at least", 0.5, 1.0, lowest, 0.01,
                                     key=f"audit_min_conf::{s.name}",
                                     help="Confidence: the share of the evidence (classifier and neighbours) for the "
                                          f"suggested label. Starts at {lowest:.2f}; look at the images below first.")
                confident = unl[unl["suggestion_confidence"] >= min_conf]
                if confident.empty:
                    st.caption(f"No suggestion reaches {min_conf:.2f} (the most confident is "
                               f"{unl['suggestion_confidence'].max():.2f}): lower the confidence, or accept them one "
                               "by one below.")
                st.button(f"Accept {plural(len(confident), 'confident suggestion')}", key="audit_accept_unlabeled",
                          disabled=confident.empty, on_click=act,
                          args=(label_ops.relabel_each, ctx.store, s.name,
                                {pid: typed(new) for pid, new in zip(confident["id"], confident["suggested_label"])},
                                field),
                          help="One step: a single undo reverts them all." if len(confident) else
                               "Nothing reaches this confidence: lower it.")
            if len(unl):
                with st.expander("As a table"):
                    st.dataframe(unl[["id", "suggested_label", "suggestion_confidence", "file_name"]], hide_index=True)
                per_row, shown_unl = 6, unl.head(4 * PER_PAGE)
                if len(unl) > len(shown_unl):
                    st.caption(f"The {len(shown_unl)} most confident of {len(unl):,}; the others follow as these are "
                               "accepted.")
                ucols = st.columns(per_row)
                for j, (r, row) in enumerate(shown_unl.iterrows()):
                    with ucols[j % per_row]:
                        st.image(thumb(report.points.payloads[int(r)], ctx, 112), width=112)
                        st.text(f"→ {payload_text(row['suggested_label'], 20)} ({row['suggestion_confidence']:.2f})\n"
                                f"{payload_text(row.get('file_name') or '', 24)}")
                        if editor:
                            st.button(f"Accept '{md_escape(clip(row['suggested_label'], 14))}'",
                                      key=f"audit_unl_{r}_accept", on_click=act,
                                      args=(label_ops.relabel, ctx.store, s.name, [row["id"]], field,
                                            typed(row["suggested_label"])))

    with tabs[5]:
        changes = st.session_state.get("audit_changes", [])
        st.caption(f"{plural(len(changes), 'change')} in this session, written to Qdrant (label_original and "
                   "label_history are kept in each point's payload). Changes made by one click are one step.")
        if changes:
            log = pd.DataFrame([c.as_row() for c in changes])
            st.dataframe(log.drop(columns=["collection", "id"]), hide_index=True, key="audit_log")
            st.download_button("Export change log (CSV)", to_csv(log), f"{s.name}-changes.csv", "text/csv",
                               key="audit_export_changes")
        if changes and editor:
            last = changes[-1].batch
            n_last = sum(c.batch == last for c in changes) if last else 1
            st.button(f"Undo the last step ({plural(n_last, 'change')})", key="audit_undo",
                      on_click=undo_last, args=(ctx.store, field))
        st.button("Re-run the audit with the new labels", key="audit_rerun", on_click=rerank, args=(ctx.store,),
                  help="Your decisions become trusted labels: the audit refits with them and re-ranks the rest, in "
                       "the background.")
    export_panel(ctx, audit_report=report, key="audit_panel", label_field=field)


report_view()
