"""Development kit shared by tests and benchmarks: live servers, instant adapters, synthetic chats.

Not part of the product (the wheel ships only ``twin``); importable from the repository root, where
``python -m pytest`` and ``python -m bench`` run. Test-only helpers live in ``tests/helpers``.
"""
