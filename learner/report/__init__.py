"""What a run reports: classification metrics (`metrics`) and the pictures (`plots`)."""
