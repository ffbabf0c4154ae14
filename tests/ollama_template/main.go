// Renders an Ollama Modelfile's TEMPLATE with Go's text/template, the engine Ollama uses, over the values Ollama
// gives a chat template (template/template.go, Execute and collate): .System joins the system messages, .Messages
// holds every message (consecutive turns of one role merged), and the Modelfile's SYSTEM comes first when the chat
// has no system message (as Ollama's server puts it). Reads {"template", "system", "chats": [[{role, content}]]}
// as JSON on stdin; prints the rendered chats as a JSON list.
package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"text/template"
)

type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type Ask struct {
	Template string      `json:"template"`
	System   string      `json:"system"`
	Chats    [][]Message `json:"chats"`
}

func collate(msgs []Message) (string, []*Message) {
	var system []string
	var collated []*Message
	for i := range msgs {
		if msgs[i].Role == "system" {
			system = append(system, msgs[i].Content)
		}
		if len(collated) > 0 && collated[len(collated)-1].Role == msgs[i].Role && msgs[i].Role != "tool" {
			collated[len(collated)-1].Content += "\n\n" + msgs[i].Content
		} else {
			collated = append(collated, &msgs[i])
		}
	}
	return strings.Join(system, "\n\n"), collated
}

func main() {
	var ask Ask
	if err := json.NewDecoder(os.Stdin).Decode(&ask); err != nil {
		panic(err)
	}
	tmpl := template.Must(template.New("").Option("missingkey=zero").Parse(ask.Template))
	out := []string{}
	for _, chat := range ask.Chats {
		if ask.System != "" && (len(chat) == 0 || chat[0].Role != "system") {
			chat = append([]Message{{Role: "system", Content: ask.System}}, chat...)
		}
		system, messages := collate(chat)
		var b bytes.Buffer
		values := map[string]any{"System": system, "Messages": messages, "Tools": nil, "Response": ""}
		if err := tmpl.Execute(&b, values); err != nil {
			panic(err)
		}
		out = append(out, b.String())
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
