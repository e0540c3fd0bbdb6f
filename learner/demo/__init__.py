"""The demo's logic without Gradio widgets (app.py lays those out): which model to serve (`models`), what one
upload becomes (`classify`), events in long recordings (`events`), the Model tab (`model_tab`), example clips
(`examples`), and worker processes for long uploads (`lanes`). It serves models; it never trains them."""
