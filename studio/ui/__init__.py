"""The Gradio face of the studio: layout, wiring and charts. No training logic lives here."""
