"""Python dependencies into layers."""
