"""Event contracts: what the ledger stores and publishes.

Every event records who (``actor``) and when (``timestamp``); corrections and
revisions also record why (``reason``). Event classes carry a ``class_version``;
when a shape changes, the class gains a static ``upcast_vN_vM`` method.
"""
