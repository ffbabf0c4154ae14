"""The studio's entry point, locally and as a Hugging Face Space (studio/ui/launch.py holds the settings)."""

from studio.ui.launch import launch

if __name__ == "__main__":
    launch()
