"""Evidence an auditor accepts: signed proofs of delivery, anchored audit chain, reports."""
