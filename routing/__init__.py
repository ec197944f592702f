"""Pure decisions: rule matching, classification, lifecycle transitions and calendars. No I/O."""
