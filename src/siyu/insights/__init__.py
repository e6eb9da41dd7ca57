"""Insights on conversations: which inbound customer messages need a reply."""

from siyu.insights.needs_reply import NeedsReplyClassifier, Verdict, default_classifier

__all__ = ["NeedsReplyClassifier", "Verdict", "default_classifier"]
