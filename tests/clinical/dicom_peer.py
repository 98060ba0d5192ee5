#!/usr/bin/env python3
"""A DICOM network peer (pynetdicom) for testing vmunet's DICOM SCP / SCU.

    dicom_peer.py send FOLDER HOST PORT AET [--calling VMUNET-TEST] [--expect success|failure|any]
    dicom_peer.py abort FOLDER HOST PORT AET --after N
    dicom_peer.py unknown HOST PORT AET [--sop-class UID ...]
    dicom_peer.py echo HOST PORT AET
    dicom_peer.py recv PORT AET OUTDIR [--timeout S] [--count N] [--accept UID,...] [--validate]

Every subcommand prints one JSON object on stdout and exits non-zero on an unexpected outcome:
  send     C-STOREs every file under FOLDER (recursively, byte for byte from the file) on one
           association; with --expect success (default) every file must be stored with a success
           or warning status, with --expect failure every file must be refused (failure status or
           no accepted presentation context).
  abort    sends N files, then A-ABORTs (no release); the N statuses must be success/warning.
  unknown  1) proposes only SOP classes the SCP should not support (RT Plan Storage and a made-up
           storage UID): every context must be rejected (or the association refused);
           2) proposes CT Image Storage and C-STOREs a CT dataset with no Rows/Columns/PixelData:
           the status must be a failure (0xA7xx, 0xA9xx, 0xCxxx, 0x01xx, 0x02xx).
  echo     C-ECHO; status must be 0x0000.
  recv     a storage SCP (all storage SOP classes, all transfer syntaxes unless --accept) that
           writes each received instance, as received, to OUTDIR/<SOPInstanceUID>.dcm and exits
           after --count successful stores (default 1): exit 0, or at --timeout: exit 1.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import threading
import time
from pathlib import Path

try:
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
    from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, _config, evt
    from pynetdicom.sop_class import Verification
except ImportError as e:  # pragma: no cover
    sys.exit(f"dicom_peer: missing Python package ({e}); pip install -r tests/clinical/requirements.txt")

# Send files byte for byte (no decode / re-encode): the accepted context must then carry the
# file's own transfer syntax.
_config.STORE_SEND_CHUNKED_DATASET = True

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
RT_PLAN_STORAGE = "1.2.840.10008.5.1.4.1.1.481.5"
MADE_UP_STORAGE = "1.2.826.0.1.3680043.8.498.99.424242.1"  # under pydicom's UID root; no such SOP class

CONTEXT_RESULTS = {0: "acceptance", 1: "user-rejection", 2: "no-reason (provider rejection)",
                   3: "abstract-syntax-not-supported", 4: "transfer-syntaxes-not-supported"}


def status_category(code: int | None) -> str:
    if code is None:
        return "no-response"
    if code == 0x0000:
        return "success"
    if code in (0xB000, 0xB006, 0xB007) or code in (0x0107, 0x0116):
        return "warning"
    if code in (0xFF00, 0xFF01):
        return "pending"
    if code == 0xFE00:
        return "cancel"
    return "failure"


def hexcode(code):
    return None if code is None else f"0x{code:04X}"


def make_ae(calling: str, timeout: float) -> AE:
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.connection_timeout = timeout
    return ae


def assoc_state(assoc) -> str:
    if assoc.is_established:
        return "established"
    if assoc.is_rejected:
        return "rejected"
    if assoc.is_aborted:
        return "aborted"
    return "failed"


def scan_folder(folder: Path):
    """[(path, sop_class, sop_instance, transfer_syntax) or (path, None, None, error)]"""
    out = []
    paths = [folder] if folder.is_file() else sorted(x for x in folder.rglob("*") if x.is_file())
    for p in paths:
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
            fm = ds.file_meta
            out.append((p, str(fm.MediaStorageSOPClassUID), str(fm.MediaStorageSOPInstanceUID),
                        str(fm.TransferSyntaxUID)))
        except Exception as e:
            out.append((p, None, None, f"{type(e).__name__}: {e}"))
    return out


def request_contexts(ae: AE, files) -> list[str]:
    """One context per (SOP class, transfer syntax) pair; returns problems."""
    pairs = sorted({(f[1], f[3]) for f in files if f[1]})
    if len(pairs) > 128:
        return [f"{len(pairs)} presentation contexts needed, at most 128 fit one association"]
    for sop, ts in pairs:
        ae.add_requested_context(sop, [ts])
    return []


def store_files(assoc, files, root: Path, limit: int | None = None):
    results = []
    sent = 0
    for path, sop, inst, ts in files:
        rel = str(path.relative_to(root)) if root.is_dir() else path.name
        if sop is None:
            results.append({"file": rel, "category": "unreadable", "error": ts})
            continue
        if limit is not None and sent >= limit:
            break
        item = {"file": rel, "sop_class": sop, "sop_instance": inst, "transfer_syntax": ts}
        if not assoc.is_established:
            item.update(category="no-association")
            results.append(item)
            continue
        try:
            status = assoc.send_c_store(path)
            code = int(status.Status) if "Status" in status else None
            item.update(status=hexcode(code), category=status_category(code))
            if "ErrorComment" in status:
                item["error_comment"] = str(status.ErrorComment)
        except ValueError as e:  # no accepted context for this SOP class / transfer syntax
            item.update(category="no-context", error=str(e))
        except Exception as e:
            item.update(category="error", error=f"{type(e).__name__}: {e}")
        sent += 1
        results.append(item)
    return results


def cmd_send(args) -> int:
    folder = Path(args.folder)
    files = scan_folder(folder)
    ae = make_ae(args.calling, args.timeout)
    problems = request_contexts(ae, files)
    out = {"command": "send", "peer": f"{args.aet}@{args.host}:{args.port}", "files": len(files)}
    if not any(f[1] for f in files):
        problems.append(f"no readable DICOM file under {folder}")
    if problems:
        out["error"] = problems
        out["ok"] = False
        print(json.dumps(out, indent=1))
        return 2
    assoc = ae.associate(args.host, args.port, ae_title=args.aet)
    out["association"] = assoc_state(assoc)
    established = assoc.is_established
    if established:
        out["accepted_contexts"] = len(assoc.accepted_contexts)
        out["rejected_contexts"] = [{"sop_class": str(cx.abstract_syntax),
                                     "reason": CONTEXT_RESULTS.get(cx.result, cx.result)}
                                    for cx in assoc.rejected_contexts]
    out["results"] = store_files(assoc, files, folder)
    if assoc.is_established:
        assoc.release()
        out["released"] = True
    cats = [r["category"] for r in out["results"]]
    out["summary"] = {c: cats.count(c) for c in sorted(set(cats))}
    readable = [r for r in out["results"] if r["category"] != "unreadable"]
    if args.expect == "success":
        ok = established and all(r["category"] in ("success", "warning") for r in readable)
        ok = ok and "unreadable" not in cats
    elif args.expect == "failure":
        ok = all(r["category"] in ("failure", "no-context", "no-association") for r in readable)
    else:
        ok = True
    out["ok"] = ok
    print(json.dumps(out, indent=1))
    return 0 if ok else 1


def cmd_abort(args) -> int:
    folder = Path(args.folder)
    files = [f for f in scan_folder(folder) if f[1]]
    ae = make_ae(args.calling, args.timeout)
    out = {"command": "abort", "peer": f"{args.aet}@{args.host}:{args.port}", "after": args.after}
    if not files or args.after < 1:
        out.update(error="nothing to send", ok=False)
        print(json.dumps(out, indent=1))
        return 2
    request_contexts(ae, files[: args.after])
    assoc = ae.associate(args.host, args.port, ae_title=args.aet)
    out["association"] = assoc_state(assoc)
    out["results"] = store_files(assoc, files, folder, limit=args.after) if assoc.is_established else []
    if assoc.is_established:
        assoc.abort()
        out["aborted"] = True
    ok = (out["association"] == "established" and len(out["results"]) == min(args.after, len(files))
          and all(r["category"] in ("success", "warning") for r in out["results"]))
    out["ok"] = ok
    print(json.dumps(out, indent=1))
    return 0 if ok else 1


def malformed_ct() -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientName = "Malformed^Test"
    ds.PatientID = "MALFORMED"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "CT"
    ds.InstanceNumber = 1
    # no Rows, Columns, BitsAllocated, ImagePositionPatient, PixelData
    return ds


def cmd_unknown(args) -> int:
    out = {"command": "unknown", "peer": f"{args.aet}@{args.host}:{args.port}"}
    ok = True
    # 1. only unsupported SOP classes
    ae = make_ae(args.calling, args.timeout)
    classes = args.sop_class or [RT_PLAN_STORAGE, MADE_UP_STORAGE]
    for uid in classes:
        ae.add_requested_context(uid, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    assoc = ae.associate(args.host, args.port, ae_title=args.aet)
    part1 = {"proposed": classes, "association": assoc_state(assoc)}
    accepted = [str(cx.abstract_syntax) for cx in assoc.accepted_contexts]
    part1["accepted"] = accepted
    part1["rejected"] = [{"sop_class": str(cx.abstract_syntax), "reason": CONTEXT_RESULTS.get(cx.result, cx.result)}
                         for cx in assoc.rejected_contexts]
    if assoc.is_established:
        assoc.release()
    # pynetdicom aborts by itself when the peer accepts the association with no context
    if part1["association"] == "rejected":
        part1["outcome"] = "association rejected (A-ASSOCIATE-RJ)"
    elif accepted:
        part1["outcome"] = "context(s) accepted"
    elif part1["rejected"]:
        part1["outcome"] = "association accepted with every context rejected (pynetdicom then aborts)"
    else:
        part1["outcome"] = "no association (could not connect, or no response)"
    part1["all_rejected"] = (part1["association"] == "rejected"
                             or (not accepted and len(part1["rejected"]) == len(classes)))
    out["unsupported_sop_classes"] = part1
    ok &= part1["all_rejected"]
    # 2. a CT dataset without Rows / PixelData
    ae = make_ae(args.calling, args.timeout)
    ae.add_requested_context(CT_IMAGE_STORAGE, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    _config.STORE_SEND_CHUNKED_DATASET = False
    assoc = ae.associate(args.host, args.port, ae_title=args.aet)
    part2 = {"association": assoc_state(assoc)}
    if assoc.is_established:
        try:
            status = assoc.send_c_store(malformed_ct())
            code = int(status.Status) if "Status" in status else None
            part2.update(status=hexcode(code), category=status_category(code))
            if "ErrorComment" in status:
                part2["error_comment"] = str(status.ErrorComment)
        except Exception as e:
            part2.update(category="error", error=f"{type(e).__name__}: {e}")
        part2["association_after"] = assoc_state(assoc)
        if assoc.is_established:
            assoc.release()
    else:
        part2["category"] = "no-association"
    out["malformed_ct_store"] = part2
    ok &= part2.get("category") == "failure"
    out["ok"] = bool(ok)
    print(json.dumps(out, indent=1))
    return 0 if ok else 1


def cmd_echo(args) -> int:
    ae = make_ae(args.calling, args.timeout)
    ae.add_requested_context(Verification)
    assoc = ae.associate(args.host, args.port, ae_title=args.aet)
    out = {"command": "echo", "peer": f"{args.aet}@{args.host}:{args.port}", "association": assoc_state(assoc)}
    code = None
    if assoc.is_established:
        status = assoc.send_c_echo()
        code = int(status.Status) if "Status" in status else None
        assoc.release()
    out["status"] = hexcode(code)
    out["ok"] = code == 0x0000
    print(json.dumps(out, indent=1))
    return 0 if out["ok"] else 1


IMAGE_ATTRS = ("Rows", "Columns", "BitsAllocated", "PixelData")


def cmd_recv(args) -> int:
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    ae = AE(ae_title=args.aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
    accept = [u.strip() for u in args.accept.split(",")] if args.accept else None
    if accept:
        for uid in accept:
            ae.add_supported_context(uid, ALL_TRANSFER_SYNTAXES)
    else:
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification)
    received, events = [], []
    done = threading.Event()
    lock = threading.Lock()

    def on_store(event):
        req = event.request
        item = {"sop_class": str(req.AffectedSOPClassUID), "sop_instance": str(req.AffectedSOPInstanceUID),
                "transfer_syntax": str(event.context.transfer_syntax),
                "calling_aet": str(event.assoc.requestor.ae_title)}
        if args.validate:
            try:
                ds = event.dataset
                missing = [a for a in IMAGE_ATTRS if a not in ds]
            except Exception as e:
                missing = [f"undecodable: {e}"]
            if missing:
                item.update(status="0xA900", missing=missing)
                with lock:
                    events.append(item)
                return 0xA900
        name = re.sub(r"[^0-9A-Za-z.]", "_", item["sop_instance"]) or "instance"
        path = outdir / f"{name}.dcm"
        data = event.encoded_dataset(include_meta=True)
        path.write_bytes(data)
        item.update(file=str(path), bytes=len(data), status="0x0000")
        with lock:
            received.append(item)
            events.append(item)
            if len(received) >= args.count:
                done.set()
        return 0x0000

    def on_echo(event):
        with lock:
            events.append({"echo_from": str(event.assoc.requestor.ae_title)})
        return 0x0000

    def on_abort(event):
        with lock:
            events.append({"aborted": str(event.assoc.requestor.ae_title)})

    handlers = [(evt.EVT_C_STORE, on_store), (evt.EVT_C_ECHO, on_echo), (evt.EVT_ABORTED, on_abort)]
    server = ae.start_server(("0.0.0.0", args.port), block=False, evt_handlers=handlers)
    print(json.dumps({"listening": args.port, "aet": args.aet}), file=sys.stderr, flush=True)
    t0 = time.monotonic()
    got = done.wait(args.timeout)
    # let the association that delivered the last instance finish (release) before shutting down
    time.sleep(0.3)
    server.shutdown()
    out = {"command": "recv", "port": args.port, "aet": args.aet, "received": received, "events": events,
           "timed_out": not got, "seconds": round(time.monotonic() - t0, 3), "ok": got}
    print(json.dumps(out, indent=1))
    return 0 if got else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    def peer(p):
        p.add_argument("host")
        p.add_argument("port", type=int)
        p.add_argument("aet")
        p.add_argument("--calling", default="VMUNET-TEST")
        p.add_argument("--timeout", type=float, default=30.0)

    p = sub.add_parser("send")
    p.add_argument("folder")
    peer(p)
    p.add_argument("--expect", choices=["success", "failure", "any"], default="success")
    p = sub.add_parser("abort")
    p.add_argument("folder")
    peer(p)
    p.add_argument("--after", type=int, required=True)
    p = sub.add_parser("unknown")
    peer(p)
    p.add_argument("--sop-class", action="append", help="SOP class UID to propose (repeatable)")
    p = sub.add_parser("echo")
    peer(p)
    p = sub.add_parser("recv")
    p.add_argument("port", type=int)
    p.add_argument("aet")
    p.add_argument("outdir")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--accept", help="comma-separated SOP class UIDs to accept (default: all storage)")
    p.add_argument("--validate", action="store_true",
                   help="refuse (0xA900) instances lacking Rows/Columns/BitsAllocated/PixelData")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)  # pynetdicom logs to stderr otherwise
    return {"send": cmd_send, "abort": cmd_abort, "unknown": cmd_unknown, "echo": cmd_echo,
            "recv": cmd_recv}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
