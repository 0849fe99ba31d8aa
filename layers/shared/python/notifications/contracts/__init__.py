"""The versioned contracts shared by every function, a module per kind:

- ``fields``: the field types (money, currency, text, names, locale, caller id) and the base of every boundary model;
  the currency list is data, ``iso4217.txt``;
- ``api``: the body of ``POST /v1/notifications`` and its 202 answer;
- ``envelopes``: the Kafka envelopes and the fan-out mapping between them;
- ``status_view``: where each channel of a notification stands (the status answer);
- ``keys``: how a notification is keyed in its caller's namespace.
"""
