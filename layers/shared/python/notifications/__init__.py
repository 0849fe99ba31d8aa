"""Shared package of the purchase-notification functions (deployed as a Lambda layer)."""
